"""serve's OTLP receivers: OTLP/HTTP (protobuf and JSON) and OTLP/gRPC, decoding in a pool of
worker processes when there is one, and handing what they accept to the span writer."""
