"""durable.v1 protocol: messages in durable_pb2, services in durable_pb2_grpc."""
