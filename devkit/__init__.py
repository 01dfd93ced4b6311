"""The development kit: what serves the demo, the tests and the benchmarks, never production.

It lives beside the ``pipeline`` package, not in it, so neither the wheel nor the Dataflow worker
image carries it; it is importable when running from the repository root (``python -m
devkit.demo``, pytest's rootdir, the bench scripts put the root on ``sys.path``).

* ``emulators``: the Pub/Sub and GCS emulators and the receiver under functions-framework, as
  subprocesses stopped by process group; ``wait_until``.
* ``loopback``: a loopback JWKS server and a keep-alive HTTP client.
* ``signing``: ``DemoSigner``, which signs events the way Canvas does.
* ``deliveries``: realistic Canvas and Caliper deliveries for every documented event name,
  generated from the field lists in ``schemas/``.
* ``samples``: Instructure's documented examples, read where they are (``../shared``).
* ``reference_verify``: the PyJWT reference the fast verifier is tested against.
* ``demo``: the whole system on one machine (``make demo``).
"""
