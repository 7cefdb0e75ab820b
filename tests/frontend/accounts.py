"""Signing in through the login page, as a person does, for the browser tests."""


def log_in(page, live_server, username, next_url="/"):
    """Sign `username` (password "password") in and wait for `next_url`."""
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_url}")
