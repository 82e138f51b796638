"""Account operations: authenticate, create users."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from sigmachat.auth.passwords import dummy_hash, hash_password, verify_password
from sigmachat.db.models import User
from sigmachat.errors import Conflict, InvalidCredentials, ValidationFailed

MIN_PASSWORD_LENGTH = 8
ROLES = ("user", "admin")


_USER_BY_ID = select(User.__table__).where(User.__table__.c.id == bindparam("user_id"))


async def signed_in_user(engine: AsyncEngine, user_id: str) -> User | None:
    """The user a verified token names (None if deleted), read for every authenticated request.

    One Core statement on a pooled connection, the row turned into a detached ``User``, as an ORM
    session would hand back once closed: the session's way cost twice the CPU, twice per answer.
    """
    async with engine.connect() as conn:
        row = (await conn.execute(_USER_BY_ID, {"user_id": user_id})).first()
    return None if row is None else User(**row._mapping)


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
