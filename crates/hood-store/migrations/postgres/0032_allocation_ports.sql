-- The ports an allocation's container published on its host (container port
-- → host port, JSON), as its agent reported them when it started: where the
-- HTTP ingress sends a container's traffic.
ALTER TABLE allocations ADD COLUMN ports TEXT NULL;
