"""Account operations: authenticate, create users."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.auth.passwords import dummy_hash, hash_password, verify_password
from sigmachat.db.models import User
from sigmachat.errors import Conflict, InvalidCredentials, ValidationFailed

MIN_PASSWORD_LENGTH = 8
ROLES = ("user", "admin")


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = (await session.execute(select(User).where(User.email == normalise_email(email)))).scalar_one_or_none()
    # Verify against a dummy hash for unknown emails so response time does not reveal accounts.
    ok = verify_password(password, user.password_hash if user else dummy_hash())
    if user is None or not ok:
        raise InvalidCredentials("Incorrect email or password.")
    return user


async def create_user(session: AsyncSession, email: str, full_name: str, password: str, role: str = "user") -> User:
    email = normalise_email(email)
    if "@" not in email or len(email) > 320:
        raise ValidationFailed("A valid email address is required.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if role not in ROLES:
        raise ValidationFailed(f"Role must be one of {', '.join(ROLES)}.")
    if (await session.execute(select(User.id).where(User.email == email))).first():
        raise Conflict(f"A user with email {email} already exists.")
    user = User(email=email, full_name=full_name, password_hash=hash_password(password), role=role)
    session.add(user)
    await session.commit()
    return user
