"""What no single service owns: event contracts, Kafka and MongoDB plumbing, configuration, logging."""
