"""Passwords and tokens: argon2id for everything a person types, SHA-256 for random tokens.

Random tokens (session cookies, link tokens) carry 256 bits of entropy, so a fast hash is
enough to store them: nobody can guess one, and a copy of the database cannot be replayed.

Passwords are normalised to Unicode NFKC before they are checked, hashed or verified (NIST SP
800-63B asks for NFKC or NFKD). The same password typed on two keyboards or systems must match:
"é" arrives as one code point (NFC, most browsers) or as "e" plus a combining accent (NFD, some
macOS and Linux input paths), and an input method may send full-width letters or a ligature.
NFKC, not NFC, because it also folds those compatibility forms; the entropy it costs (a "ﬁ"
ligature counts as "fi") is negligible. Passwords set before normalisation that contained such
forms no longer match and must be reset; plain ASCII and NFC text are unchanged by NFKC.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import os
import secrets
import threading
import unicodedata

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from relais.refusal import Refused

# 15: NIST SP 800-63B's minimum for a password that is the only factor, as for an account without
# a second factor (relais.two_factor; the same rule for all, so turning it off weakens nothing) and
# for a share's password (its link travels in the same e-mail, so the password is what stands
# between the data and whoever reads that e-mail).
MIN_LENGTH = 15
MAX_LENGTH = 1024


class PasswordRejected(Refused):
    """The password breaks a rule; ``reason`` is ``too_short``, ``too_long`` or ``too_common``."""


class Hasher:
    """argon2id with the cost from the configuration, and a dummy hash for timing.

    Every hash and verification runs on the hasher's own few threads: one per ``parallelism``
    cores (each hash already runs that many lanes at once), at most ``MAX_CONCURRENT`` (each
    takes 64 MiB, and fills the memory bus and caches that transfers use too). A flood of
    password attempts then queues behind itself, holding neither the event loop nor a thread of
    the pool that serves pages, the database and transfers; and those threads run at a lower
    CPU priority, so that while they are busy the cores go first to ``/healthz``, pages and
    transfers. A real login in a flood waits for the attempts queued before it.
    """

    MAX_CONCURRENT = 4
    NICENESS = 10  # added to the argon2 threads' nice value (Linux: per thread, inherited by argon2's lanes)

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max(1, min(self.MAX_CONCURRENT, cores // parallelism)), thread_name_prefix="relais-argon2",
            initializer=self._lower_priority, initargs=(self.NICENESS,),
        )
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
        )
        # Verified against when the account does not exist, so that "unknown user" and "wrong
        # password" take the same time and cannot be told apart.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._pool.submit(self._hash, password).result()

    def verify(self, stored: str | None, password: str) -> bool:
        return self._pool.submit(self._verify, stored, password).result()

    async def hash_async(self, password: str) -> str:
        """:meth:`hash` for async code: awaits the hasher's threads without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hash, password)

    async def verify_async(self, stored: str | None, password: str) -> bool:
        """:meth:`verify` for async code. A caller that goes away before its turn costs no CPU."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._verify, stored, password)

    def _hash(self, password: str) -> str:
        return self._hasher.hash(normalize(password))

    def _verify(self, stored: str | None, password: str) -> bool:
        password = normalize(password)
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)

    @staticmethod
    def _lower_priority(niceness: int) -> None:
        """Make the calling thread (and the threads it starts) yield the CPU to the rest of the server."""
        try:
            me = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, me, os.getpriority(os.PRIO_PROCESS, me) + niceness)
        except (AttributeError, OSError):  # not Linux, or not allowed: the queue still bounds the work
            pass


def normalize(password: str) -> str:
    """The form a password is checked, hashed and verified in (see the module's docstring)."""
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str, user_inputs: list[str] = ()) -> None:
    """Length 15 to 1,024 (after normalising), no composition rules, not common or guessable."""
    password = normalize(password)
    if len(password) < MIN_LENGTH:
        raise PasswordRejected("too_short")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected("too_long")
    # zxcvbn's cost grows fast with length; its first 72 characters (its own limit) tell a guessable password
    # (a word, a keyboard walk, a repetition) from a strong one well enough.
    if zxcvbn(password[:72], user_inputs=[u for u in user_inputs if u])["score"] < 3:
        raise PasswordRejected("too_common")


def new_token() -> str:
    """A URL-safe token with 256 random bits."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
