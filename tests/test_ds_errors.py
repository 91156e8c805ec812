"""DS answers → data or a French error the agent can act on (shapes from ../shared/ds/README.md)."""

import json

import pytest

from py_core import errors
from py_core.ds.client import interpret
from py_core.jobs.params import parse_params


def body(payload):
    return json.dumps(payload).encode()


def gql_error(message, code):
    return body({"errors": [{"message": message, "extensions": {"code": code}}], "data": None})


@pytest.mark.parametrize("status,payload,code", [
    (401, gql_error("Token expired", "unauthorized"), "token_expired"),
    (403, gql_error("Without a token, only persisted queries are allowed", "forbidden"), "token_rejected"),
    (403, gql_error("Request issued from a forbidden network. Add 1.2.3.4/32 to your allowed adresses in your /profil", "forbidden"), "forbidden_network"),
    (200, gql_error("An object of type Demarche was hidden due to permissions", "unauthorized"), "unauthorized"),
    (200, gql_error("Demarche not found", "not_found"), "not_found"),
    (400, gql_error("Unexpected end of document", "graphql_parse_failed"), "graphql_parse_failed"),
    (500, body({"errors": [{"message": "Internal", "extensions": {"code": "internal_server_error", "exception_id": "x"}}]}), "server_error"),
    (502, b"<html>Bad gateway</html>", "server_error"),
    (429, b"Retry later\n", "rate_limited"),
    (200, b"<html>Not the API</html>", "bad_response"),
    (200, body({"data": None, "errors": [{"message": "Timeout", "extensions": {"code": "timeout"}}]}), "timeout"),
    (200, body({"data": {"demarche": None}, "errors": [{"message": "Demarche not found", "path": ["demarche"], "extensions": {"code": "not_found"}}]}), "not_found"),
])
def test_errors_become_french_messages(status, payload, code):
    with pytest.raises(errors.DSError) as caught:
        interpret(status, payload, 12345)
    assert caught.value.code == code
    message = caught.value.message_fr
    assert message and message[0].isupper() and message.endswith((".", ")"))
    assert "Bearer" not in message


def test_data_is_returned_when_present():
    answer = interpret(200, body({"data": {"demarche": {"number": 1}}}), 1)
    assert answer.data == {"demarche": {"number": 1}} and answer.errors == []


def test_a_partial_answer_comes_with_its_errors_never_as_complete():
    nested = {"message": "Dossier not found", "path": ["demarche", "dossiers", "nodes", 3, "champs", 0, "dossier"],
              "extensions": {"code": "not_found"}}
    answer = interpret(200, body({"data": {"demarche": {"dossiers": {"nodes": []}}}, "errors": [nested]}), 7)
    assert answer.errors == [nested] and answer.error_codes() == {"not_found"}, \
        "a nested « not found » is not an unknown procedure"


@pytest.mark.parametrize("reset,retry_after,expected", [
    ("1000010", None, 10.0),   # RateLimit-Reset: epoch seconds
    (None, "7", 7.0),          # Retry-After: seconds
    ("999990", None, 1.0),     # already past: a second
    (None, None, 60.0),        # nothing said: DS's window
])
def test_rate_limit_wait_follows_the_headers(reset, retry_after, expected):
    from py_core.ds.client import rate_limit_wait
    assert rate_limit_wait(reset, retry_after, now=1_000_000) == expected


@pytest.mark.parametrize("raw,code", [
    ({"demarche": "", "token": "t", "endpoint": "https://x/api"}, "demarche_empty"),
    ({"demarche": "12a", "token": "t", "endpoint": "https://x/api"}, "demarche_invalid"),
    ({"demarche": "-3", "token": "t", "endpoint": "https://x/api"}, "demarche_invalid"),
    ({"demarche": "12", "token": "  ", "endpoint": "https://x/api"}, "token_empty"),
    ({"demarche": "12", "token": "t", "endpoint": "ftp://x"}, "endpoint_invalid"),
])
def test_bad_input_is_refused_in_french(raw, code):
    with pytest.raises(errors.InputError) as caught:
        parse_params(raw)
    assert caught.value.code == code


def test_params_never_show_the_token():
    params = parse_params({"demarche": " 12345 ", "token": "secret-token-value", "endpoint": "https://ds.example/api/v2/graphql"})
    assert params.number == 12345 and "secret-token-value" not in repr(params)
