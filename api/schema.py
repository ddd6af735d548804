"""Validation of request bodies: JSON in, typed requests or a list of reasons out.

Two levels, as DESIGN §2 says: a problem with the request itself raises `Invalid`
(the endpoint answers 400 and changes nothing); a problem with one customer of an
import rejects only that customer, with a reason, and the others still import.

Bodies are read by api/jsonbody.py: the list of a request (customers, ids, numbers) item by
item, each checked as it is read and kept small, so memory follows the body's size; at most
MAX_ITEMS items per request. Every check runs before anything is written. Reasons are
counted in full but only the first MAX_LISTED are kept and listed (api/problems.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable

from api import jsonbody
from api.problems import MAX_LISTED, UNLISTED, Problems, Rejections
from daemon import config_values as values_mod
from daemon import ivr, outcome, phone, values, webhooks
from daemon.errors import AutocallError
from daemon.store.records import ImportRequest, NewCustomer

MAX_ITEMS = 200_000  # customers, ids or numbers in one request
MAX_MOBILES = 10
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 1024
SETTINGS = {  # optional queue fields: (lowest, highest)
    "concurrent_call": (1, 1000),
    "max_recall_count": (0, 100),
    "min_recall_duration": (0, 3600),
}
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CONTRACT = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}")
_CALLER_ID = re.compile(r"\+?[0-9]{1,20}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that are invisible, reorder text or break a line (control, format such as bidi
# overrides, surrogates, private and unassigned, line/paragraph separators): refused in ids.
_HIDDEN_IN_ID = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_HIDDEN_IN_TEXT = frozenset({"Cc", "Cs"})  # field values: no control characters, valid Unicode
RESERVED_FIELDS = ("id", "mobiles")


class Invalid(AutocallError):
    """The request as a whole is unacceptable; `errors` lists the first MAX_LISTED reasons
    found, `total` counts them all."""

    def __init__(self, errors):
        errors = errors if isinstance(errors, Problems) else Problems(errors)
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors, self.total = errors.listed, errors.total


def parse_json(raw: bytes, streams=None):
    """Decode a JSON body strictly (UTF-8, no NaN/Infinity) with bounded memory, handing the
    arrays of `streams` item by item (api/jsonbody.py); Invalid if it cannot be read."""
    try:
        return jsonbody.read(raw, streams or {}, MAX_ITEMS)
    except jsonbody.BodyError as e:
        raise Invalid([{"field": e.field, "reason": e.reason}]) from None
    except (ValueError, RecursionError) as e:
        raise Invalid([{"field": "body", "reason": f"body is not valid JSON: {e}"}]) from None


def _listed(body, key: str) -> int:
    """How many items the array `key` of `body` had (0 if it was no array)."""
    value = body.get(key)
    return value.count if isinstance(value, jsonbody.Streamed) else 0


def queue_code(raw: bytes) -> str:
    """The `queue_code` of a command body, or Invalid."""
    return _command_code(parse_json(raw))


def _command_code(body) -> str:
    if not isinstance(body, dict):
        raise Invalid([{"field": "body", "reason": "expected a JSON object"}])
    errors: list[dict] = []
    code = _queue_code(body.get("queue_code"), errors)
    if code is None:
        raise Invalid(errors)
    return code


def dnc_request(raw: bytes) -> tuple[str, list[str]]:
    """(queue_code, customer ids) of a DNC body, or Invalid."""
    ids: list[str] = []
    errors = Problems()

    def add(i, item, _head):
        ext_id = _customer_id(item, f"customers[{i}]", errors)
        if ext_id is not None:
            reason = _id_problem(ext_id)
            if reason:
                errors.append({"field": f"customers[{i}].id", "reason": reason})
            ids.extend(dnc_forms(ext_id))

    body = parse_json(raw, {"customers": add})
    code = _command_code(body)
    if not _listed(body, "customers"):
        raise Invalid([{"field": "customers", "reason": "expected a non-empty list of {\"id\": ...}"}])
    if errors:
        raise Invalid(errors)
    return code, list(dict.fromkeys(ids))


def dnc_numbers_request(raw: bytes) -> list[str]:
    """The numbers of a `{"mobiles": [...]}` body in national form, each once, or Invalid
    (one bad number refuses the whole list: a DNC must not be half taken)."""
    numbers: list[str] = []
    errors = Problems()

    def add(i, item, _head):
        try:
            numbers.append(phone.normalize(item))
        except phone.InvalidPhone as e:
            errors.append({"field": f"mobiles[{i}]", "reason": str(e)})

    body = parse_json(raw, {"mobiles": add})
    if not isinstance(body, dict):
        raise Invalid([{"field": "body", "reason": "expected a JSON object"}])
    if not _listed(body, "mobiles"):
        raise Invalid([{"field": "mobiles", "reason": "expected a non-empty list of phone numbers"}])
    if errors:
        raise Invalid(errors)
    return list(dict.fromkeys(numbers))


def import_request(
    raw: bytes, templates: ivr.TemplateLoader, callback_hosts=(), policy: ImportPolicy | None = None
) -> tuple[ImportRequest, Rejections, Problems]:
    """Validate an import body, every customer of it, before anything is written.

    Returns the request holding only the acceptable customers, the rejected ones and the
    warnings about accepted ones (a mobile dropped as invalid), each as
    ``{"id": ..., "reason": ...}``. Raises Invalid for request-level problems. The optional
    `callback_url` (ours, not the seed's) follows `webhooks.check_url`; null or "" clears it.
    The optional `retry_when` (recall causes) and `caller_id` (one of `policy.caller_ids`) are
    queue settings too, null clearing them; a customer's optional `priority` (0-9) is its own,
    else `policy.priority_of(dpd)`.
    """
    policy = policy or ImportPolicy()
    items = _ImportItems(templates, policy)
    body = parse_json(raw, {"customers": items.add})
    if not isinstance(body, dict):
        raise Invalid([{"field": "body", "reason": "expected a JSON object"}])
    errors = Problems()
    code = _queue_code(body.get("queue_code"), errors)
    template = _template(body.get("template"), templates, errors)
    settings: dict[str, int | str | None] = {}
    for name, (low, high) in SETTINGS.items():
        if name in body:
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append({"field": name, "reason": "must be an integer"})
            elif not low <= value <= high:
                errors.append({"field": name, "reason": f"must be between {low} and {high}"})
            else:
                settings[name] = value
    if "callback_url" in body:
        url = body["callback_url"]
        try:
            settings["callback_url"] = (
                None if url in (None, "") else webhooks.check_url(url, allowed_hosts=callback_hosts, callback=True)
            )
        except ValueError as e:
            errors.append({"field": "callback_url", "reason": str(e)})
    if "retry_when" in body:
        _retry_when(body["retry_when"], settings, errors)
    if "caller_id" in body:
        _caller_id(body["caller_id"], policy.caller_ids, settings, errors)
    if not _listed(body, "customers"):
        errors.append({"field": "customers", "reason": "expected a non-empty list of customers"})
    errors.merge(items.errors)
    if errors or code is None or template is None:
        raise Invalid(errors)
    accepted, rejected, warnings = items.sorted(template.speakable)
    return ImportRequest(code, template.name, settings, accepted), rejected, warnings


@dataclasses.dataclass(frozen=True)
class ImportPolicy:
    """What an import is checked against beyond the templates: the caller ids the config knows
    (`Config.caller_ids`), and the priority of a customer that gives none (from its dpd)."""

    caller_ids: frozenset[str] = frozenset()
    priority_of: Callable[[object], int] = lambda dpd: 0


def _retry_when(value, settings: dict, errors):
    if value is None:
        settings["retry_when"] = None
        return
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and v in outcome.RECALL_CAUSES for v in value)
        or len(set(value)) != len(value)
    ):
        causes = ", ".join(outcome.RECALL_CAUSES)
        errors.append(
            {"field": "retry_when", "reason": f"expected a list of distinct recall causes from {causes} (or null)"}
        )
        return
    settings["retry_when"] = value


def _caller_id(value, allowed: frozenset[str], settings: dict, errors):
    if value in (None, ""):
        settings["caller_id"] = None
    elif not isinstance(value, str) or not _CALLER_ID.fullmatch(value):
        errors.append({"field": "caller_id", "reason": "expected digits (optionally with a leading +), at most 20"})
    elif value not in allowed:
        known = ", ".join(sorted(allowed)) or "none are configured"
        errors.append(
            {
                "field": "caller_id",
                "reason": f"{value} is not a configured caller id (dialer.caller_id, trunks: {known})",
            }
        )
    else:
        settings["caller_id"] = value


class _ImportItems:
    """The customers of an import as they are read, each checked at once and kept small: its
    id, and its NewCustomer or the reason it is refused (kept for the first MAX_LISTED). When
    the template came before the customers, as in the seed, what it reads aloud is checked
    at once too (`template.speakable`: what the call would say, checked now rather than failed
    later), so a refused customer never stays whole in memory."""

    def __init__(self, templates: ivr.TemplateLoader, policy: ImportPolicy):
        self.templates, self.policy = templates, policy
        self.speakable: ivr.FieldCheck | None = None  # known once the template is
        self.errors = Problems()  # items that are no customer at all: the request is refused
        self.ids: list[str] = []
        self.checked: list[NewCustomer | str | None] = []
        self.warnings: dict[int, list[str]] = {}  # item -> its dropped mobiles
        self._plans = _FieldPlans()
        self._reasons = 0

    def add(self, i: int, item, head: dict):
        if i == 0:
            self.speakable = self._speakable(head.get("template"))
        ext_id = _customer_id(item, f"customers[{i}]", self.errors)
        if ext_id is None:
            return
        dropped: list[str] = []
        try:
            customer = _customer(ext_id, item, dropped, self._plans, self.policy.priority_of)
            checked: NewCustomer | str | None = customer
            if self.speakable is not None:
                checked = self.speakable.problem(customer.fields) or customer
        except CustomerRejected as e:
            checked = str(e)
        if isinstance(checked, NewCustomer):
            if dropped:
                self.warnings[len(self.ids)] = dropped
        else:
            self._reasons += 1
            checked = checked if self._reasons <= MAX_LISTED else None
        self.ids.append(ext_id)
        self.checked.append(checked)

    def _speakable(self, name) -> ivr.FieldCheck | None:
        """What template `name` (valid on disk now) reads aloud, if it can be had (else
        import_request says why)."""
        if not isinstance(name, str) or not ivr.valid_template_name(name):
            return None
        try:
            return self.templates.get_current(name).speakable
        except (ivr.UnknownTemplate, ivr.TemplateInvalid):
            return None

    def sorted(self, speakable: ivr.FieldCheck) -> tuple[list[NewCustomer], Rejections, Problems]:
        """(accepted, rejected, warnings) once the template is known."""
        repeated = {ext_id: n for ext_id, n in Counter(self.ids).items() if n > 1}  # in request order
        accepted: list[NewCustomer] = []
        rejected, warnings = Rejections(), Problems()
        for ext_id in repeated:
            rejected.append({"id": ext_id, "reason": "the same id appears more than once in this request"})
        for n, (ext_id, checked) in enumerate(zip(self.ids, self.checked)):
            if ext_id in repeated:
                continue
            if isinstance(checked, NewCustomer) and self.speakable is None:
                checked = speakable.problem(checked.fields) or checked
            if isinstance(checked, NewCustomer):
                accepted.append(checked)
                warnings.extend({"id": ext_id, "reason": reason} for reason in self.warnings.get(n, ()))
            else:
                rejected.append({"id": ext_id, "reason": checked or UNLISTED})
        return accepted, rejected, warnings


class CustomerRejected(AutocallError):
    """One customer of an import cannot be accepted; the message says why."""


def _queue_code(value, errors) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.append({"field": "queue_code", "reason": "required, a non-empty string"})
        return None
    problem = _name_problem(value)
    if value in (".", ".."):  # a URL path segment clients and proxies remove: it could never be read back
        problem = "cannot be . or .. (it could not be named in a URL)"
    if problem:
        errors.append({"field": "queue_code", "reason": f"queue_code {problem}"})
        return None
    return value


def _template(value, templates: ivr.TemplateLoader, errors) -> ivr.Template | None:
    if not isinstance(value, str) or not value:
        errors.append({"field": "template", "reason": "required, the name of a template"})
    elif not ivr.valid_template_name(value):
        errors.append({"field": "template", "reason": "a template name holds only letters, digits, '_', '-' and '.'"})
    else:
        try:
            return templates.get_current(value)  # valid on disk now, not only the last good version
        except ivr.UnknownTemplate:
            errors.append({"field": "template", "reason": f"no template named {value!r}"})
        except ivr.TemplateInvalid as e:
            errors.append({"field": "template", "reason": f"{e} (see: autocall templates check {value})"})
    return None


def _customer_id(item, where, errors) -> str | None:
    if not isinstance(item, dict):
        errors.append({"field": where, "reason": "expected an object"})
        return None
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        errors.append({"field": f"{where}.id", "reason": "required, a string (or an integer)"})
        return None
    return str(value)


def dnc_forms(ext_id: str) -> list[str]:
    """The ids a DNC of `ext_id` blocks: it, and its composed (NFC) and decomposed (NFD) forms
    where they differ, so that the customer is reached however the import spelled the same
    letters (an import creates only the composed form now, `values.new_id_problem`; an older
    one may have stored either)."""
    if ext_id.isascii():
        return [ext_id]
    return list(dict.fromkeys((ext_id, unicodedata.normalize("NFC", ext_id), unicodedata.normalize("NFD", ext_id))))


def customer_id_problem(ext_id: str) -> str | None:
    """Why `ext_id` cannot be a customer id (as an import or a DNC request checks it), or None."""
    return _id_problem(ext_id)


def _id_problem(ext_id: str) -> str | None:
    if not ext_id.strip():
        return "id is empty" if not ext_id else "id is only spaces"
    problem = _name_problem(ext_id)
    return f"id {problem}" if problem else None


def _name_problem(text: str) -> str | None:
    """Why `text` cannot name a customer or a queue (it is printed in logs, CSVs and URLs)."""
    if len(text) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if text != text.strip():
        return "has spaces at the start or the end"
    hidden = _hidden_character(text, _HIDDEN_IN_ID)
    return f"contains the invisible or control character {hidden}" if hidden else None


def _hidden_character(text: str, categories: frozenset) -> str | None:
    """The first character of `text` in one of the Unicode `categories`, as U+XXXX; else None."""
    if text.isascii():  # the common case, without a look at every character
        match = _CONTROL.search(text)
        return f"U+{ord(match.group()):04X}" if match else None
    for char in text:
        if unicodedata.category(char) in categories:
            return f"U+{ord(char):04X}"
    return None


def _customer(
    ext_id: str, raw: dict, dropped: list, plans: _FieldPlans | None = None, priority_of=lambda dpd: 0
) -> NewCustomer:
    problem = _id_problem(ext_id)
    if problem:
        raise CustomerRejected(problem)
    mobiles, problems = _mobiles(raw.get("mobiles"))
    if problems:
        dropped.extend(f"mobile dropped: {reason}" for reason in problems)
    plan = plans.get(raw) if plans is not None else None
    if plan is None:
        fields = {_field_name(name): _field(name, value) for name, value in raw.items() if name not in RESERVED_FIELDS}
    else:
        fields = {name: check(name, value) for (name, check), value in zip(plan, raw.values()) if check is not None}
    priority = fields.get("priority")
    return NewCustomer(ext_id, mobiles, fields, priority_of(fields.get("dpd")) if priority is None else priority)


class _FieldPlans:
    """How to check the fields of a customer, worked out once per distinct tuple of keys (the
    customers of an import usually all have the same): each field's name as the one string kept
    for it and its fast check (None for the reserved ones). A fast check returns what `_field`
    would for a value it can vouch for, and calls `_field` for any other: so a customer is
    accepted, or refused with the same reason, as by the field-by-field path."""

    MAX_PLANS = 64  # key tuples remembered per import; a customer with another has its plan worked out anew

    def __init__(self):
        self._plans: dict[tuple, tuple | None] = {}

    def get(self, raw: dict) -> tuple | None:
        """The plan for `raw`'s keys, or None when one of them is no field name (the
        field-by-field path then refuses it, in the order it always has)."""
        keys = tuple(raw)
        try:
            return self._plans[keys]
        except KeyError:
            pass
        plan = self._plan(keys)
        if len(self._plans) < self.MAX_PLANS:
            self._plans[keys] = plan
        return plan

    @staticmethod
    def _plan(keys: tuple) -> tuple | None:
        try:
            return tuple(
                (name, None) if name in RESERVED_FIELDS else (_field_name(name), _FAST_CHECKS.get(name, _field))
                for name in keys
            )
        except CustomerRejected:
            return None


@functools.lru_cache(maxsize=1024)  # the same few field names on every customer
def _field_name(name: str) -> str:
    """`name` if it may name a field, as the one string object kept for it (the cache's:
    customers read one by one would each hold their own copy)."""
    if _FIELD_NAME.fullmatch(name) is None:
        raise CustomerRejected(f"field name {name[:80]!r} is not an identifier")
    return name


def _mobiles(value) -> tuple[list[str], list[str]]:
    """(valid numbers in national form, reasons for the invalid ones); none valid rejects."""
    if type(value) is list and 0 < len(value) <= MAX_MOBILES:
        try:
            if all(map(phone.in_national_form, value)):
                return list(dict.fromkeys(value)), []  # the usual list: what normalize would return, unchanged
        except TypeError:
            pass  # an item that is no string: said below
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise CustomerRejected("mobiles: expected a non-empty list of phone numbers")
    if len(value) > MAX_MOBILES:
        raise CustomerRejected(f"mobiles: at most {MAX_MOBILES} numbers")
    numbers, problems = [], []
    for item in value:
        try:
            numbers.append(phone.normalize(item))
        except phone.InvalidPhone as e:
            problems.append(str(e))
    if not numbers:
        raise CustomerRejected("no valid mobile: " + "; ".join(problems))
    return list(dict.fromkeys(numbers)), problems


def _field(name: str, value):
    kind = type(value)
    if kind is str:
        if len(value) > MAX_TEXT_LENGTH:
            raise CustomerRejected(f"{name}: longer than {MAX_TEXT_LENGTH} characters")
        hidden = _hidden_character(value, _HIDDEN_IN_TEXT)
        if hidden:
            raise CustomerRejected(f"{name}: contains {hidden} (a control character or half of a surrogate pair)")
    elif kind is float:
        if not math.isfinite(value):
            raise CustomerRejected(f"{name}: not a finite number")
    elif value is None:
        return None
    elif kind is not int and kind is not bool:
        raise CustomerRejected(f"{name}: expected a string, number, boolean or null")
    check = _KNOWN_FIELDS.get(name)
    return value if check is None else check(name, value)


def _contract_number(name, value):
    if type(value) is not str or not _CONTRACT.fullmatch(value):
        raise CustomerRejected(f"{name}: letters and digits (and / _ . -) only, at most 64")
    return value


def _priority(name, value):
    if type(value) is not int or not 0 <= value <= values_mod.MAX_PRIORITY:
        raise CustomerRejected(f"{name}: expected a whole number from 0 to {values_mod.MAX_PRIORITY}")
    return value


def _whole_number(name, value):
    number = values.whole_number(value)
    if number is None or number >= 10**15:
        raise CustomerRejected(f"{name}: expected a whole number from 0 to 10^15")
    return number


@functools.lru_cache(maxsize=4096)  # due dates repeat across customers: one string kept for each
def _date(name, value) -> str:
    """Accept the dates say_vi can read; keep the ISO form."""
    day = values.parse_date(value) if isinstance(value, str) else None
    if day is None:
        raise CustomerRejected(f"{name}: expected a real date as {values.DATE_FORMS}")
    return day.isoformat()


# Known customer fields and how each must look (DESIGN §2: all other scalars are extra variables).
_KNOWN_FIELDS: dict[str, Callable[[str, object], object]] = {
    "contract_number": _contract_number,
    "upcoming_amount": _whole_number,
    "total_ovd_amount": _whole_number,
    "dpd": _whole_number,
    "number_of_ovd_inst": _whole_number,
    "upcoming_due_date": _date,
    "due_date": _date,
    "priority": _priority,
}


def _fast_whole_number(name, value):
    if type(value) is int and 0 <= value < 10**15:
        return value
    return _field(name, value)


def _fast_contract_number(name, value):
    if type(value) is str and _CONTRACT.fullmatch(value):  # short plain ASCII: `_field`'s text checks pass
        return value
    return _field(name, value)


def _fast_date(name, value):
    # ASCII with a digit at both ends: nothing for strip() to take, so a date matched the
    # whole text and it holds only digits, '-' and '/': `_field`'s text checks pass.
    if type(value) is str and value.isascii() and value[:1].isdigit() and value[-1:].isdigit():
        try:
            return _date(name, value)
        except CustomerRejected:
            pass
    return _field(name, value)


_FAST_OF = {
    _contract_number: _fast_contract_number,
    _whole_number: _fast_whole_number,
    _date: _fast_date,
    _priority: _field,
}
# What `_FieldPlans` calls for a known field; every other field (extra variables) gets `_field`.
_FAST_CHECKS: dict[str, Callable[[str, object], object]] = {
    name: _FAST_OF[check] for name, check in _KNOWN_FIELDS.items()
}
