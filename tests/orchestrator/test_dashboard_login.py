"""Signing in and out; every page is for signed-in people only."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

SOME_ID = uuid.uuid4()
PAGES = [
    ("home", {}),
    ("workpools:list", {}),
    ("workpools:pools_fragment", {}),
    ("deployments:list", {}),
    ("deployments:detail", {"pk": SOME_ID}),
    ("deployments:custom_run", {"pk": SOME_ID}),
    ("runs:list", {}),
    ("runs:detail", {"pk": SOME_ID}),
    ("runs:header_fragment", {"pk": SOME_ID}),
    ("runs:timeline_fragment", {"pk": SOME_ID}),
    ("runs:task_runs_fragment", {"pk": SOME_ID}),
    ("runs:logs_fragment", {"pk": SOME_ID}),
]
ACTIONS = [
    ("workpools:pool_pause", {"pk": SOME_ID}),
    ("workpools:pool_resume", {"pk": SOME_ID}),
    ("workpools:queue_pause", {"pk": SOME_ID}),
    ("workpools:queue_resume", {"pk": SOME_ID}),
    ("deployments:quick_run", {"pk": SOME_ID}),
    ("deployments:pause", {"pk": SOME_ID}),
    ("deployments:resume", {"pk": SOME_ID}),
    ("runs:cancel", {"pk": SOME_ID}),
]


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("olga", "olga@example.com", "a-long-passphrase")


@pytest.mark.parametrize(("name", "kwargs"), PAGES + ACTIONS)
def test_an_anonymous_visitor_is_sent_to_sign_in_from_every_page(client: Any, name: str, kwargs: dict) -> None:
    url = reverse(name, kwargs=kwargs)
    response = client.post(url) if (name, kwargs) in ACTIONS else client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_a_person_signs_in_and_lands_on_home(client: Any, operator: Any) -> None:
    page = client.get(reverse("login"))
    assert b'name="username"' in page.content and b'name="password"' in page.content
    response = client.post(reverse("login"), {"username": "olga", "password": "a-long-passphrase"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("home")
    assert b"Signed in as <strong>olga</strong>" in response.content


def test_a_wrong_password_is_refused_with_a_message(client: Any, operator: Any) -> None:
    response = client.post(reverse("login"), {"username": "olga", "password": "nope"})
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert "_auth_user_id" not in client.session


def test_the_user_menu_logs_out(client: Any, operator: Any) -> None:
    client.force_login(operator)
    home = client.get(reverse("home")).content.decode()
    assert f'action="{reverse("logout")}"' in home
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert client.get(reverse("home")).status_code == 302


def test_staff_see_the_admin_link_and_others_do_not(client: Any, operator: Any, admin_user: Any) -> None:
    admin_link = f'href="{reverse("admin:index")}"'.encode()
    client.force_login(operator)
    assert admin_link not in client.get(reverse("home")).content
    client.force_login(admin_user)
    assert admin_link in client.get(reverse("home")).content


def test_htmx_comes_from_our_own_static_files_with_its_license(admin_client: Any) -> None:
    page = admin_client.get(reverse("home")).content.decode()
    assert '<script src="/static/vendor/htmx.min.js" defer></script>' in page
    assert "://" not in page.split("<body")[0], "no asset from another host"
    vendored = Path(settings.BASE_DIR, "static", "vendor")
    assert (vendored / "htmx.min.js").read_text().startswith("/*! htmx 2.")
    assert "Zero-Clause BSD" in (vendored / "htmx.LICENSE").read_text()


def test_htmx_posts_carry_the_csrf_token(admin_client: Any) -> None:
    page = admin_client.get(reverse("home")).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in page


def test_a_polled_fragment_whose_session_ended_sends_the_whole_page_to_sign_in(client: Any) -> None:
    response = client.get(
        reverse("workpools:pools_fragment"),
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/work-pools/?x=1",
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("login") + "?next=/work-pools/%3Fx%3D1"
