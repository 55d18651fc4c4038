-- Node labels (an operator's names for slices of the fleet) and what a
-- rollout targets by them; rollouts that apply a recipe instead of a
-- version.
CREATE TABLE node_labels (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    label_key TEXT NOT NULL,
    label_value TEXT NOT NULL,
    PRIMARY KEY (node_id, label_key)
);
CREATE INDEX node_labels_key_idx ON node_labels (label_key, label_value);

ALTER TABLE rollouts ADD COLUMN kind TEXT NOT NULL DEFAULT 'upgrade';
ALTER TABLE rollouts ADD COLUMN selector TEXT;
