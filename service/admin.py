"""The operator's command line, no HTTP needed: ``python -m service.admin tokens ...``.

    python -m service.admin tokens create --owner bob [--role admin] [--label ci] [--expires-in-days 90]
    python -m service.admin tokens list [--owner bob] [--revoked]
    python -m service.admin tokens revoke TOKEN_ID

It reads DATABASE_URL / TRAINRX_DATA_DIR like the API, and refuses an unmigrated database.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.db import make_engine
from core.migrate import SchemaNotCurrent, require_current
from core.settings import Settings
from core.tokens import ROLES, USER, TokenStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service.admin", description="trainrx operator commands")
    groups = parser.add_subparsers(dest="group", required=True)
    tokens = groups.add_parser("tokens", help="API tokens").add_subparsers(dest="action", required=True)
    create = tokens.add_parser("create", help="create a token and print it (shown once)")
    create.add_argument("--owner", required=True)
    create.add_argument("--role", choices=ROLES, default=USER)
    create.add_argument("--label")
    create.add_argument("--expires-in-days", type=int, dest="expires_in_days")
    listing = tokens.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--owner", help="only this owner's (default: everyone's)")
    listing.add_argument("--revoked", action="store_true", help="include revoked tokens")
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")
    return parser


def _record(token) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in token.public().items()}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    engine = make_engine(Settings.from_env().database_url)
    try:
        require_current(engine)
        store = TokenStore(engine)
        if args.action == "create":
            if args.expires_in_days is not None and args.expires_in_days < 1:
                print("error: --expires-in-days must be at least 1", file=sys.stderr)
                return 2
            try:
                record, token = store.create(args.owner, args.role, label=args.label,
                                             expires_in_days=args.expires_in_days)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(json.dumps({**_record(record), "token": token}, indent=2))
            print("The token is shown this once; only its hash is stored.", file=sys.stderr)
        elif args.action == "list":
            for record in store.list(args.owner, include_revoked=args.revoked):
                print(json.dumps(_record(record)))
        elif args.action == "revoke":
            if not store.revoke(args.token_id):
                print(f"error: no token with id {args.token_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.token_id}")
        return 0
    except SchemaNotCurrent as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
