"""The demo trading platform: the seed spec's services as real FastAPI apps.

Each service is an ordinary FastAPI app launched under ``opentelemetry-instrument``
with the chainmap distro; the only chainmap code inside them is the optional
domain helpers of :mod:`chainmap_otel.track`. :mod:`chainmap_otel.demo.stack`
starts the embedded stack and the platform, :mod:`chainmap_otel.demo.load`
drives traffic and :mod:`chainmap_otel.demo.report` analyses what was stored.
"""
