"""`persian-data explore`: a local web app over a root's clips, conversations, eval runs and voices.

Modules, lowest first: sources (what there is: corpora and runs, found in one place), search
(Persian-normalized FTS queries), builders (index rows from each input file), index (the SQLite
index, its location and freshness), queries (what each page reads), review / evals (the chat
review file, eval results and alignments), files (safe file serving), markup (template filters),
voices (the voices page and API, loaded on first use), app (the pages and routes), serve (the
command: port, index, serve).
"""
