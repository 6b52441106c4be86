"""What fersweep runs or talks to beside itself, below every adapter: PostgreSQL (the
databases of the tracking server and of the studies) and server processes (a free port, a
process group stopped whole)."""
