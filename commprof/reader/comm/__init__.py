"""What is communication: the classification table, the communication-kernel rules and the collectives."""
