"""Everything that talks to a Kafka-protocol broker: clients, topics, faust patches, the
embedded broker and its TLS front."""
