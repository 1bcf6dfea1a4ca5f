from calsync.redact import redact_url


def test_inner_path_query_and_credentials_are_dropped():
    url = "https://user:pw@calendar.example/calendar/ical/ann%40acme.test/private-1f2e3d/basic.ics?token=s3cret#x"
    redacted = redact_url(url)
    assert redacted == "https://calendar.example/…/basic.ics"
    for secret in ("private-1f2e3d", "s3cret", "pw", "ann%40acme.test"):
        assert secret not in redacted


def test_short_urls_keep_host_port_and_file():
    assert redact_url("http://127.0.0.1:8080/team.ics") == "http://127.0.0.1:8080/team.ics"
    assert redact_url("https://cal.example") == "https://cal.example"
