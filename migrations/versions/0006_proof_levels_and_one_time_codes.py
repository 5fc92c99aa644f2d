"""proof levels and one-time codes

A chat proves it is the customer's either with an order number and its contact (that order only)
or with a one-time code e-mailed to the customer (everything); failed proofs are also counted per
contact given and per client address.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proof", sa.String(length=8), nullable=True))
    # Chats verified before proof levels existed proved an order with its contact.
    op.execute("UPDATE conversations SET proof = 'order' WHERE customer_id IS NOT NULL")
    with op.batch_alter_table("verification_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_verification_contact_time", ["contact_key", "created_at"], unique=False)
        batch_op.create_index("ix_verification_address_time", ["address", "created_at"], unique=False)
    op.create_table(
        "one_time_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_one_time_codes_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_one_time_codes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_one_time_codes")),
    )
    with op.batch_alter_table("one_time_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_one_time_codes_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index("ix_one_time_codes_customer_time", ["customer_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("one_time_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_one_time_codes_customer_time")
        batch_op.drop_index(batch_op.f("ix_one_time_codes_conversation_id"))
    op.drop_table("one_time_codes")
    with op.batch_alter_table("verification_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_address_time")
        batch_op.drop_index("ix_verification_contact_time")
        batch_op.drop_column("address")
        batch_op.drop_column("contact_key")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("proof")
