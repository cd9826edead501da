-- Access keys record who created them (security review S6): removing a member, or deleting
-- their account, revokes the keys they created, and the key list shows the creator. Keys made
-- before this migration have no creator (NULL).
ALTER TABLE server_access_keys ADD COLUMN created_by TEXT;
CREATE INDEX idx_access_keys_creator ON server_access_keys(workspace_id, created_by);
