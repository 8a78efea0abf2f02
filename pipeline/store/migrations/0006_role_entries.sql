-- Group roles (pipeline/model/roles.py): a sync entry of kind 'role' says that an
-- owner (sender_id) set a member's (subject_id) role, the new role in body
-- ('owner', 'admin' or 'member'). Adding a value to an Enum8 changes only the
-- table's metadata, on 18.16 as on modern ClickHouse.

ALTER TABLE sync_timeline
    MODIFY COLUMN kind Enum8('message' = 1, 'created' = 2, 'joined' = 3, 'left' = 4, 'role' = 5);
