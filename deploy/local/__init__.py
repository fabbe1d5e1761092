"""The local runtime shared by `make up`, the tests and the benchmarks.

runtime.py (standard library only, also run as a script) fetches, builds and runs Kafka and FerretDB;
components.py starts them on free ports in a folder of their own; platform_processes.py starts the four APIs
and four workers on them; topic_reader.py reads a topic from its beginning to its end.

No module here is named after a top-level module (e.g. `platform`, `kafka`): `python deploy/local/runtime.py`
puts this folder first on sys.path, where such a file would shadow the real one (uuid imports `platform`).
"""
