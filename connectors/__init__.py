"""How messages move and are remembered: directory, senders, inbox/mailbox service, journal.

No Prefect here; imports go flows → connectors → xoev, never back.
"""
