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
