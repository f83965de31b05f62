"""The demo corpus (tools/demo/corpus) is well formed: every document valid against the HTTP
ingest schema with a unique UUIDv4 ticket_id, languages balanced, 80-600 words each; the PII
table matches what ingest's rules find; the invalid cases are invalid the way expected.json says;
every question's expected document exists; documents.ndjson is built from docs/; ingest's
category rules give expected.json's categories. And the checks catch what they are for (a broken copy of the corpus fails them). Fast: no services."""
import copy
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "demo", "corpus"))
import check  # noqa: E402


@pytest.fixture(scope="module")
def corpus():
    return check.load_all()


@pytest.mark.parametrize("name", ["documents", "balance", "pii", "categories", "invalid",
                                  "questions", "built"])
def test_corpus_check(corpus, name):
    errs = check.run_all(corpus)[name]
    assert errs == [], "\n".join(errs)


def test_counts(corpus):
    docs = corpus["docs"]
    assert len(docs) >= 64
    assert len(corpus["expected"]["pii"]) >= 4
    assert len(corpus["invalid"]) >= 4
    assert {c["via"] for c in corpus["invalid"]} == {"http", "kafka"}
    qs = corpus["questions"]["questions"]
    assert len(qs) >= 8 and len(corpus["questions"]["booking"]) == 2


def test_pii_values_are_what_they_claim(corpus):
    """The test card numbers pass Luhn and the IBANs their mod-97 check, else ingest would
    (rightly) leave them alone."""
    raws = [r for v in corpus["expected"]["pii"].values() for r in v["raw"]]
    assert any(check.luhn_ok(r) for r in raws if r.startswith("4111"))
    ibans = [r for r in raws if r[:2] in ("DO", "ES")]
    assert ibans and all(check.iban_ok(r) for r in ibans)
    assert not check.iban_ok("DO43 BCDR 0000 0002 4113 9067 1842")
    assert not check.luhn_ok("4111 1111 1111 1112")


def test_predicted_redaction():
    counts, text = check.predict_pii("Escriba a ana@example.com o al (809) 555-0142; cédula "
                                     "001-1234567-8, tarjeta 4111 1111 1111 1111.")
    assert counts == {"EMAIL": 1, "PHONE": 1, "CEDULA": 1, "CARD": 1}
    assert "555" not in text and "@" not in text


def test_prediction_runs_ingests_own_rules():
    """check.py reads tn_pii_default_rules out of common/src/pii.c (no copy to drift): every rule
    line is there, and the cases of tests/unit/common/pii_test.c come out the same."""
    with open(check.PII_SOURCE, encoding="utf-8") as f:
        src = f.read()
    assert [t for t, _, _ in check.PII_RULES] == ["EMAIL", "IBAN", "CARD", "CEDULA", "CEDULA",
                                                 "PHONE", "PHONE"]
    assert src.count('"CEDULA  ') == 2  # the parse found every rule line of the source
    cases = {
        "IBAN es91 2100 0418 4502 0005 1332 por favor": "IBAN [IBAN] por favor",
        "to ES91 2100 0418 4502 0005 1332 PLEASE": "to [IBAN] PLEASE",
        "ref es91 2100 0418 4502 0005 1333 ok": None,
        "cedula 00112345673.": "cedula [CEDULA].",
        "cedula 001 1234567 3.": "cedula [CEDULA].",
        "cedula 001-1234567-8.": "cedula [CEDULA].",
        "cedula 00112345678.": None,
        "llame al 18095550142": "llame al [PHONE]",
        "tel (809) 555-0142, 829-555-0199, +1 849 555 0100, 8095550142, +34 612 345 678":
            "tel [PHONE], [PHONE], [PHONE], [PHONE], [PHONE]",
        "Solicitud 2026-004512, RNC 1-31-12345-6, codigo 123-456-7890": None,
        "lote 809-555-0142-77": None,
    }
    for text, want in cases.items():
        assert check.predict_pii(text)[1] == (want or text), text
    with pytest.raises(ValueError):
        check.parse_pii_rules("EMAIL maybe x+\n")


def test_category_prediction(corpus):
    """check.py scores ingest's category rules (read from common/src/category.c) the way
    tn_category_classify_doc() does (cases of tests/unit/common/category_test.c), and a wrong
    expectation is caught."""
    assert check.predict_category(
        "Learner's permit", "The learner's permit is the first step towards a driving licence. "
        "Bring your ID card or birth certificate. Book the driving test on the portal.",
        "en") == "driving_licence"
    assert check.predict_category(
        "Benefits card blocked after three wrong PINs", "He receives the pension and his "
        "benefits card was blocked. He gave his ID card number. A blocked card is unblocked at "
        "the bank with his ID card.", "en") == "social_benefits"
    assert check.predict_category("Renew your ID card", "Bring your old ID card. Your driving "
                                  "licence is not accepted instead.", "en") == "national_id"
    assert check.predict_category("Hello", "good morning", "en") == "general"
    exp = copy.deepcopy(corpus["expected"])
    exp["categories"]["licence-learner-en"] = "national_id"
    errs = check.check_categories(corpus["docs"], exp)
    assert any("licence-learner-en: the rules would give driving_licence" in e for e in errs)


def test_checks_catch_broken_documents(corpus):
    docs = copy.deepcopy(corpus["docs"])
    del docs[0]["title"]
    docs[1]["ticket_id"] = docs[2]["ticket_id"]
    docs[3]["body"] = "Demasiado corto."
    docs[4]["content_type"] = "application/pdf"
    docs[5]["ticket_id"] = "2f1c3b9a-0000-1000-8000-000000000000"  # a UUIDv1
    errs = "\n".join(check.check_documents(docs, corpus["http"], corpus["raw"]))
    for what in ("'title' is a required property", "used twice", "words",
                 "'application/pdf' is not one of", "not a lower-case UUIDv4"):
        assert what in errs, (what, errs)


def test_checks_catch_broken_expectations(corpus):
    exp = copy.deepcopy(corpus["expected"])
    name = next(iter(exp["pii"]))
    exp["pii"][name]["counts"]["IBAN"] = 1  # the document has no IBAN
    exp["pii"]["no-such-doc"] = {"counts": {"EMAIL": 1}, "raw": []}
    errs = "\n".join(check.check_pii(corpus["docs"], exp))
    assert "no-such-doc is not a document" in errs and name in errs
    qs = copy.deepcopy(corpus["questions"])
    qs["questions"][0]["expect"] = ["no-such-doc"]
    assert check.check_questions(corpus["docs"], qs)
    cases = copy.deepcopy(corpus["invalid"])
    for c in cases:
        if c["case"] == "http-missing-title":
            c["record"]["title"] = "Ahora es válido"
    errs = "\n".join(check.check_invalid(cases, corpus["expected"], corpus["http"],
                                         corpus["raw"]))
    assert "http-missing-title: valid against the HTTP ticket schema" in errs
