"""E-mail notifications to each sender's contacts about its invoices' statuses (issue 24 §4, docs/notifications.md).

policy (what is queued, in the transaction that records the status), outbox (the ``notifications`` table: due mails,
claims, outcomes, listings), compose and digest (the mails), smtp (one connection to the server), send (the one loop
that sends what is due).
"""
