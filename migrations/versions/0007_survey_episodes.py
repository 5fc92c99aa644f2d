"""survey episodes

Each satisfaction survey names the service episode it rates (a ticket's resolution, a hand-back,
a chat the bot served), once: a unique key. Surveys from before keep no episode unless they were
about a resolved ticket or a hand-back, the two real episodes the old rules already required.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


# Revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('csat_surveys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('episode', sa.String(length=80), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_csat_surveys_episode'), ['episode'])
    # Which resolution or hand-back an old survey was about is not recorded; its own id keeps the key
    # unique. Surveys a goodbye or a customer's request opened stay without one: they don't count.
    op.execute(
        "UPDATE csat_surveys SET episode = 'legacy-ticket:' || ticket_id || ':' || id "
        "WHERE trigger = 'ticket_resolved' AND ticket_id IS NOT NULL"
    )
    op.execute(
        "UPDATE csat_surveys SET episode = 'legacy-handoff:' || id WHERE trigger = 'agent_handback'"
    )


def downgrade() -> None:
    with op.batch_alter_table('csat_surveys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_csat_surveys_episode'), type_='unique')
        batch_op.drop_column('episode')
