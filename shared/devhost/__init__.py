"""The dev host: runs the functions ``function_app.py`` registers, with the Functions host's semantics.

- :mod:`shared.devhost.functions`  discovers the registered functions and resolves their bindings
- :mod:`shared.devhost.expressions` ``%NAME%`` app-setting expressions in binding values
- :mod:`shared.devhost.policy`     the functions' retry policies
- :mod:`shared.devhost.retry`      the invoker that applies them
- :mod:`shared.devhost.kafka`      Kafka trigger source (offsets committed after the function)
- :mod:`shared.devhost.eventhubs`  Event Hubs trigger source (blob checkpoints after the function)
- :mod:`shared.devhost.host`       runs the sources, shuts down gracefully on SIGINT/SIGTERM
- :mod:`shared.devhost.live`       the live view (events/s, batches, retries, lag per partition)
"""
