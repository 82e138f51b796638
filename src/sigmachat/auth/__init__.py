"""Authentication: argon2 password hashing, JWT access tokens, cookie/Bearer identity, CSRF."""
