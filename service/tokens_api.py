"""/v1/tokens, /v1/me and /v1/session: who the caller is, and their credentials.

Admins create, list and revoke tokens for anyone; a user manages their own
(CI creates and revokes its tokens this way). The same operations without HTTP:
``python -m service.admin tokens ...``.
"""

from __future__ import annotations

from flask import jsonify, make_response
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from core.tokens import ADMIN, OWNER_PATTERN, OWNER_RULE, ROLES, USER, TokenStore
from service.auth import auth, current_principal, listed_owner
from service.extensions import parts
from service.schemas import OwnerArgsSchema

blp = Blueprint("tokens", __name__, url_prefix="/v1", description="Identity: tokens, the caller, browser sessions")

MAX_EXPIRY_DAYS = 3650


class TokenCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    owner = fields.String(validate=validate.Regexp(OWNER_PATTERN, error=f"Must be {OWNER_RULE}."),
                          metadata={"description": "Whose token; default: the caller. Users may only name "
                                                   "themselves."})
    role = fields.String(load_default=USER, validate=validate.OneOf(ROLES),
                         metadata={"description": "`admin` tokens can only be made by admins."})
    label = fields.String(load_default=None, allow_none=True,
                          validate=[validate.Length(min=1, max=100),
                                    validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="Must not contain control "
                                                                                  "characters.")])
    expires_in_days = fields.Integer(strict=True, load_default=None, allow_none=True,
                                     validate=validate.Range(min=1, max=MAX_EXPIRY_DAYS),
                                     metadata={"description": "Null: the token does not expire."})


class TokenSchema(Schema):
    id = fields.String()
    owner = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    label = fields.String(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)


class NewTokenSchema(TokenSchema):
    token = fields.String(metadata={"description": "The token itself: shown this once, stored only as a hash."})


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema))


class MeSchema(Schema):
    owner = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    via = fields.String(validate=validate.OneOf(["bearer", "session"]),
                        metadata={"description": "How the credential came: a Bearer token or the session cookie."})
    token = fields.Nested(TokenSchema)


class SessionSchema(Schema):
    owner = fields.String()
    role = fields.String()
    csrf_token = fields.String(metadata={"description": "Send as X-CSRF-Token with every unsafe request made "
                                                        "with the session cookie."})


def tokens() -> TokenStore:
    return TokenStore(parts().store.engine)


@blp.route("/tokens")
class Tokens(MethodView):
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, NewTokenSchema, description="The token is in `token`, shown this once.")
    @blp.alt_response(403, description="A user asked for another owner's token or for an admin token.")
    def post(self, args: dict):
        """Create a token (admins: for anyone; users: a `user` token of their own)."""
        principal = current_principal()
        owner = args.get("owner") or principal.owner
        if not principal.is_admin and (owner != principal.owner or args["role"] == ADMIN):
            abort(403, message="Users may only create user tokens for themselves.")
        record, token = tokens().create(owner, args["role"], label=args["label"],
                                        expires_in_days=args["expires_in_days"])
        return {**record.public(), "token": token}

    @blp.arguments(OwnerArgsSchema, location="query")
    @blp.response(200, TokenListSchema)
    @blp.alt_response(403, description="A user asked for another owner's tokens.")
    def get(self, args: dict):
        """List your tokens that are not revoked (never the tokens themselves)."""
        owner = listed_owner(current_principal(), args.get("owner"))
        return {"items": [t.public() for t in tokens().list(owner)]}


@blp.route("/tokens/<token_id>")
class TokenById(MethodView):
    @blp.response(204, description="Revoked: requests with it get 401 from now on (within a few seconds).")
    @blp.alt_response(404, description="No such token (of yours).")
    def delete(self, token_id: str):
        """Revoke a token."""
        if not tokens().revoke(token_id, current_principal().scope):
            abort(404, message=f"No token with id {token_id!r}.")
        return None


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    def get(self):
        """Who the credential belongs to."""
        principal = current_principal()
        record = tokens().get(principal.token_id)
        return {"owner": principal.owner, "role": principal.role, "via": principal.via,
                "token": record.public() if record else None}


@blp.route("/session")
class Session(MethodView):
    @blp.response(201, SessionSchema, description="The session cookie is set (HttpOnly, SameSite=Strict).")
    def post(self):
        """Start a browser session for the caller's token: a cookie for pages that cannot send headers."""
        principal = current_principal()
        response = make_response(jsonify({"owner": principal.owner, "role": principal.role}), 201)
        csrf = auth().start_session(response, principal)
        response.set_data(jsonify({"owner": principal.owner, "role": principal.role, "csrf_token": csrf}).get_data())
        return response

    @blp.response(204, description="The session cookie is cleared.")
    def delete(self):
        """End the browser session."""
        response = make_response("", 204)
        auth().end_session(response)
        return response
