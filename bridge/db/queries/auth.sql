-- API tokens and the role checks made with them (bridge/auth.py).

-- name: user_exists
SELECT EXISTS (SELECT 1 FROM entitlements.users WHERE user_id = :user_id);

-- name: insert_token
INSERT INTO entitlements.api_tokens (user_id, token_hash, label, expires_at)
VALUES (:user_id, :token_hash, :label, :expires_at)
RETURNING token_id;

-- name: user_of_token
-- A token counts while it is neither revoked nor expired and its user is active. Its last use is
-- recorded at most once a minute: every /api request comes through here, and a write per request
-- would cost more than the lookup.
WITH valid AS (
    SELECT t.token_id, t.user_id, t.last_used_at
    FROM entitlements.api_tokens t
    JOIN entitlements.users u ON u.user_id = t.user_id AND u.is_active
    WHERE t.token_hash = :token_hash
      AND t.revoked_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())
),
touched AS (
    UPDATE entitlements.api_tokens t
    SET last_used_at = now()
    FROM valid v
    WHERE t.token_id = v.token_id
      AND (v.last_used_at IS NULL OR v.last_used_at < now() - INTERVAL '1 minute')
)
SELECT user_id FROM valid;

-- name: revoke_tokens_of_user
UPDATE entitlements.api_tokens SET revoked_at = now() WHERE user_id = :user_id AND revoked_at IS NULL;

-- name: holds_role
SELECT EXISTS (SELECT 1 FROM entitlements.v_active_role_grants WHERE user_id = :user_id AND role_code = :role_code);

-- name: upsert_user
INSERT INTO entitlements.users (user_id, username, email, first_name, last_name)
VALUES (:user_id, :user_id, :email, :first_name, :last_name)
ON CONFLICT (user_id) DO UPDATE
SET email      = coalesce(EXCLUDED.email, entitlements.users.email),
    first_name = coalesce(EXCLUDED.first_name, entitlements.users.first_name),
    last_name  = coalesce(EXCLUDED.last_name, entitlements.users.last_name),
    is_active  = TRUE;

-- name: grant_role
INSERT INTO entitlements.user_workflow_roles (user_id, role_id, assigned_by)
SELECT :user_id, role_id, :assigned_by FROM entitlements.workflow_roles WHERE role_code = :role_code
ON CONFLICT (user_id, role_id) DO UPDATE SET valid_until = NULL
RETURNING user_role_id;
