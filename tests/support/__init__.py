"""What only the tests and the benchmarks use: the local hub with a request log, scripted faults and a
slow link (`hub`), the hub in a process of its own (`hub_process`), and the replicas as the tests
build them, with their hostile files and the exact contents they declare (`replicas`).

The code under test is the real code: these wrap or feed it, never replace it. Tests import this
package as `support` (pytest puts tests/ on sys.path); a benchmark adds the tests folder first.
"""
