-- 0017: the built-in role that may import entitlements through the API (POST /api/admin/entitlements).
-- Operators import from the command line (bridge users import FILE), which needs no role.
INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type, permissions)
VALUES ('ENTITLEMENTS_ADMIN', 'Entitlements administrator', 'SYSTEM', '{"entitlements": true}')
ON CONFLICT (role_code) DO NOTHING;
