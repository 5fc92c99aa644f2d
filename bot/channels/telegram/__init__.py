"""The Telegram channel: the update store, rendering, the outbox, and the channel that wires them."""
