"""Generated gRPC stubs of the durable API (`durable.proto.v1`). Regenerate with
`python -m durable.proto.generate` after editing `proto/v1/*.proto`."""
