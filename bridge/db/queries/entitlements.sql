-- Entitlements import (bridge/entitlements.py): departments, users and role grants from a file or the API.

-- name: upsert_department
INSERT INTO entitlements.departments (department_code, department_name, parent_dept_id)
VALUES (:code, :name, (SELECT department_id FROM entitlements.departments WHERE department_code = :parent))
ON CONFLICT (department_code) DO UPDATE
SET department_name = EXCLUDED.department_name,
    parent_dept_id = coalesce(EXCLUDED.parent_dept_id, entitlements.departments.parent_dept_id);

-- name: known_roles
SELECT role_code FROM entitlements.workflow_roles WHERE role_code = ANY(CAST(:codes AS text[]));

-- name: known_departments
SELECT department_code FROM entitlements.departments WHERE department_code = ANY(CAST(:codes AS text[]));

-- name: upsert_user
INSERT INTO entitlements.users (user_id, username, email, first_name, last_name, department_id, is_active)
VALUES (:user_id, :user_id, :email, :first_name, :last_name,
        (SELECT department_id FROM entitlements.departments WHERE department_code = :department), :active)
ON CONFLICT (user_id) DO UPDATE
SET email = coalesce(EXCLUDED.email, entitlements.users.email),
    first_name = coalesce(EXCLUDED.first_name, entitlements.users.first_name),
    last_name = coalesce(EXCLUDED.last_name, entitlements.users.last_name),
    department_id = coalesce(EXCLUDED.department_id, entitlements.users.department_id),
    is_active = EXCLUDED.is_active;

-- name: upsert_grant
-- A grant's validity window is the file's: importing again moves it (an expired grant stops at once).
INSERT INTO entitlements.user_workflow_roles (user_id, role_id, assigned_by, valid_from, valid_until)
SELECT :user_id, role_id, :assigned_by, coalesce(CAST(:valid_from AS timestamptz), now()),
       CAST(:valid_until AS timestamptz)
FROM entitlements.workflow_roles WHERE role_code = :role
ON CONFLICT (user_id, role_id) DO UPDATE
SET valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until, assigned_by = EXCLUDED.assigned_by,
    assigned_at = now();

-- name: user_profile
SELECT u.user_id, u.email, u.first_name, u.last_name, u.is_active, d.department_code
FROM entitlements.users u LEFT JOIN entitlements.departments d ON d.department_id = u.department_id
WHERE u.user_id = :user_id;

-- name: grants_of_user
-- Every grant the user has or had; `current` as entitlements.v_active_role_grants decides it.
SELECT r.role_code, g.assigned_by, g.assigned_at, g.valid_from, g.valid_until,
       (r.is_active AND u.is_active AND g.valid_from <= now()
        AND (g.valid_until IS NULL OR g.valid_until > now())) AS current
FROM entitlements.user_workflow_roles g
JOIN entitlements.workflow_roles r ON r.role_id = g.role_id
JOIN entitlements.users u ON u.user_id = g.user_id
WHERE g.user_id = :user_id
ORDER BY r.role_code;

-- name: end_current_grant
-- Revoking a grant in force ends its window now (the row stays: when it held is history worth keeping).
UPDATE entitlements.user_workflow_roles g SET valid_until = now()
FROM entitlements.workflow_roles r
WHERE r.role_id = g.role_id AND r.role_code = :role AND g.user_id = :user_id
  AND g.valid_from <= now() AND (g.valid_until IS NULL OR g.valid_until > now())
RETURNING r.role_code, g.valid_from, g.valid_until;

-- name: drop_future_grant
-- A grant that has not started yet has no history: revoking it removes it.
DELETE FROM entitlements.user_workflow_roles g
USING entitlements.workflow_roles r
WHERE r.role_id = g.role_id AND r.role_code = :role AND g.user_id = :user_id AND g.valid_from > now()
RETURNING r.role_code, g.valid_from, g.valid_until;
