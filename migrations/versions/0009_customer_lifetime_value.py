"""customer lifetime value

Two columns on customers: the margin on purchases so far and the discounted margin expected over
the CLV horizon (bot/crm/value.py). Empty until the next rescoring fills them. And one row per
day of rescoring with the base's equity, for its trend.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


# Revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clv_to_date', sa.Numeric(precision=12, scale=2), nullable=True))
        batch_op.add_column(sa.Column('clv_future', sa.Numeric(precision=12, scale=2), nullable=True))
    op.create_table(
        'equity_snapshots',
        sa.Column('taken_on', sa.Date(), nullable=False),
        sa.Column('customers', sa.Integer(), nullable=False),
        sa.Column('value_to_date', sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column('equity', sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column('model', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('taken_on', name=op.f('pk_equity_snapshots')),
    )


def downgrade() -> None:
    op.drop_table('equity_snapshots')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('clv_future')
        batch_op.drop_column('clv_to_date')
