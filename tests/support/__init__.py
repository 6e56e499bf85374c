"""What only the tests and the benchmarks use: the local hub with a request log, scripted faults and a
slow link (`hub`), the hub in a process of its own (`hub_process`), the replicas as the tests build
them, with their hostile files and the exact contents they declare (`replicas`, `hostile`), a random
VITS voice written into a folder (`voices`), tiny random Whisper/CTC models (`tiny_asr`).

The code under test is the real code: these wrap or feed it, never replace it. Tests import this
package as `support` (pytest puts tests/ on sys.path, as for `conftest`); a benchmark adds the
repository's tests/ folder to sys.path first.
"""
