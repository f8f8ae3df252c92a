"""Leadership: one leader among replicas on a Lease, its terms, and the fence every write passes."""
