"""What the tests share: factories, clients, sign-in, servers and processes. No tests live here."""
