"""Rules that make the chat corpus fit to train on, as pure functions (no I/O, no logging):
`pii` (personal data masked with typed placeholders), `answers` (non-answers and advertising),
`script` (is it mostly Persian), `near_dup` (near-identical questions collapsed, MinHash/LSH), and
`batch` (one numpy pass over a batch of texts that tells each rule where it can match, so that
the rules together cost about one scan; each rule's plain form stays the reference)."""
