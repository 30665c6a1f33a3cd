from mcp_sync_auth._util.redact import clean_server_text, redact_secrets

SECRET = "s3cr/et+token="


def test_redact_secrets_replaces_every_form_and_changes_nothing_else():
    text = f'Bearer  error="x",\tseen="{SECRET}" form=s3cr%2Fet%2Btoken%3D plus=s3cr%2Fet%2Btoken%3D ' + "y" * 500
    redacted = redact_secrets(text, [None, "", SECRET])
    assert SECRET not in redacted and "s3cr%2F" not in redacted
    assert redacted == text.replace(SECRET, "[redacted]").replace("s3cr%2Fet%2Btoken%3D", "[redacted]")


def test_clean_server_text_redacts_before_it_cuts():
    text = "x" * 195 + SECRET + "\x1b[31m"
    cleaned = clean_server_text(text, [SECRET])
    assert SECRET[:4] not in cleaned and "\x1b" not in cleaned and cleaned.endswith("...")
