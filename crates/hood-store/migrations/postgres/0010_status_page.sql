-- The public status page (/status): the nodes whose organization chose to
-- show them, with no login. A node absent here is private. Terminated
-- nodes stay listed (their history is still shown) until the node row is
-- pruned with them.
CREATE TABLE public_status_nodes (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    made_public_at BIGINT NOT NULL,
    CONSTRAINT public_status_nodes_pkey PRIMARY KEY (node_id)
);
CREATE INDEX public_status_nodes_org_idx ON public_status_nodes (org_id);
