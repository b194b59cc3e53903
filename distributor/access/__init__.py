"""Who may do what: the acting user, users and their tokens, the audit trail."""
