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

-- name: list_tokens
-- What is known of each token, never the secret nor its hash. state as user_of_token sees it now.
SELECT t.token_id, t.user_id, t.label, t.created_at, t.expires_at, t.last_used_at, t.revoked_at,
       CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
            WHEN t.expires_at IS NOT NULL AND t.expires_at <= now() THEN 'expired'
            WHEN NOT u.is_active THEN 'user inactive'
            ELSE 'active' END AS state
FROM entitlements.api_tokens t
JOIN entitlements.users u ON u.user_id = t.user_id
WHERE CAST(:user_id AS VARCHAR) IS NULL OR t.user_id = :user_id
ORDER BY t.user_id, t.created_at, t.token_id;

-- name: tokens_to_revoke
-- The tokens a `bridge token revoke` names (by id or by label, optionally of one user), locked so that two
-- revokes of one token do not both think they revoked it.
SELECT token_id, user_id, label, revoked_at
FROM entitlements.api_tokens
WHERE (CAST(:token_id AS BIGINT) IS NULL OR token_id = :token_id)
  AND (CAST(:label AS TEXT) IS NULL OR label = :label)
  AND (CAST(:user_id AS VARCHAR) IS NULL OR user_id = :user_id)
ORDER BY token_id
FOR UPDATE;

-- name: revoke_token
UPDATE entitlements.api_tokens SET revoked_at = now() WHERE token_id = :token_id AND revoked_at IS NULL
RETURNING revoked_at;

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
