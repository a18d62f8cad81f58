"""collections have owners

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:12:05.114233

Existing collections keep a null owner: public ones made before owners existed are reached by admins
only (002 with `owner_id` 0), the users collection has none, and a face dataset's collection takes its
dataset's owner at its next enrolment (services/face/face_login_and_datasets.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collections", sa.Column("owner_id", sa.BigInteger(), nullable=True), schema="face")
    op.drop_constraint("uq_collections_kind", "collections", schema="face", type_="unique")
    op.create_unique_constraint(
        "uq_collections_kind_owner_name",
        "collections",
        ["kind", "owner_id", "name"],
        schema="face",
        postgresql_nulls_not_distinct=True,
    )


def downgrade() -> None:
    # Two owners' collections of one name cannot both survive the old constraint: keep the oldest.
    op.execute(
        "DELETE FROM face.collections c USING face.collections older "
        "WHERE c.kind = older.kind AND c.name = older.name AND c.id > older.id"
    )
    op.drop_constraint("uq_collections_kind_owner_name", "collections", schema="face", type_="unique")
    op.create_unique_constraint(op.f("uq_collections_kind"), "collections", ["kind", "name"], schema="face")
    op.drop_column("collections", "owner_id", schema="face")
