"""Webhook targets and SSRF (issue 15). No test here sends traffic anywhere but 127.0.0.1: refused
targets are refused by the check itself, and names resolve through a stubbed resolver."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.test import override_settings

from apps.integration import egress, webhooks
from apps.integration.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from apps.integration.services import webhook_subscription_create
from apps.outbox.models import OutboxEvent

LOCAL = override_settings(CER_WEBHOOK_ALLOW_HTTP=True, CER_WEBHOOK_ALLOW_PRIVATE=True)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "0.0.0.0",  # noqa: S104 (only checked, never bound)
        "169.254.169.254",
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "100.127.255.254",
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "2002:a00:1::1",  # 6to4 around 10.0.0.1
        "2002:808:808::1",  # 6to4 of a public address is refused too
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "64:ff9b::a00:1",
        "not-an-address",
    ],
)
def test_an_address_that_is_not_public_unicast_is_refused(address):
    assert egress.address_allowed(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_a_public_unicast_address_is_allowed(address):
    assert egress.address_allowed(address) is True


@pytest.fixture
def dns(monkeypatch):
    """The resolver seam: a table of names; every lookup is recorded."""
    table: dict[str, list[str]] = {}
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise OSError("unknown name")
        return table[host]

    monkeypatch.setattr(egress, "resolve", resolve)
    return type("Dns", (), {"table": table, "calls": calls})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hook.example.org/x", "scheme"),
        ("ftp://hook.example.org/x", "scheme"),
        ("https://user:pw@hook.example.org/x", "credentials"),
        ("https://hook.example.org:22/x", "port"),
        ("https://hook.example.org:6379/x", "port"),
        ("https://unknown.example.org/x", "unresolvable"),
        ("https://mixed.example.org/x", "not_public"),
        ("https://cgnat.example.org/x", "not_public"),
        ("https://10.0.0.1/x", "not_public"),
        ("https://[::1]/x", "not_public"),
        ("https://hook.example.org:99999/x", "invalid"),
    ],
)
def test_a_target_is_refused_by_the_check(dns, url, reason):
    dns.table.update(
        {
            "hook.example.org": ["93.184.216.34"],
            "mixed.example.org": ["93.184.216.34", "10.1.2.3"],
            "cgnat.example.org": ["100.64.0.1"],
            "10.0.0.1": ["10.0.0.1"],
            "::1": ["::1"],
        }
    )
    with pytest.raises(egress.TargetRefused) as refused:
        egress.target_check(url)
    assert refused.value.reason == reason


def test_a_public_https_target_passes_with_its_checked_addresses(dns):
    dns.table["hook.example.org"] = ["93.184.216.34", "2606:2800:220:1::1"]
    target = egress.target_check("https://hook.example.org:8443/cer/hook?x=1")
    assert (target.host, target.port, target.path) == ("hook.example.org", 8443, "/cer/hook?x=1")
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1::1")


@pytest.mark.parametrize("address", ["100.64.0.1", "10.0.0.5", "224.0.0.251"])
def test_the_api_refuses_a_subscription_to_a_non_public_target(api_a, dns, address):
    dns.table["internal.example.org"] = [address]
    response = api_a.post("/api/v1/webhooks", {"url": "https://internal.example.org/hook"})
    assert response.status_code == 400
    assert response.json()["code"] == "webhook_target_refused"
    assert not WebhookSubscription.objects.exists()


def test_the_api_refuses_a_subscription_on_a_port_that_is_not_allowed(api_a, dns):
    dns.table["hook.example.org"] = ["93.184.216.34"]
    response = api_a.post("/api/v1/webhooks", {"url": "https://hook.example.org:25/hook"})
    assert response.status_code == 400
    assert response.json()["params"]["reason"] == "port"


@override_settings(CER_WEBHOOK_MANAGE_RATE_LIMIT=2)
def test_subscriptions_are_rate_limited_per_client(api_a, dns):
    dns.table["hook.example.org"] = ["93.184.216.34"]
    answers = [api_a.post("/api/v1/webhooks", {"url": f"https://hook.example.org/{n}"}) for n in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert int(answers[2]["Retry-After"]) >= 1
    assert WebhookSubscription.objects.count() == 2


class Receiver:
    """An HTTP server on 127.0.0.1 answering every POST with `status` (and `location`, if set)."""

    def __init__(self, status: int = 204, location: str = "") -> None:
        self.requests: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, **dict(self.headers.items())})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _deliver(world, client, url: str) -> WebhookDelivery:
    subscription = webhook_subscription_create(
        facility=world.facility, client=client, url=url, event_types=[]
    )
    event = OutboxEvent.objects.filter(facility=world.facility).first()
    delivery = WebhookDelivery.objects.create(
        subscription=subscription.subscription, event=event, event_created_at=event.created_at
    )
    webhooks.webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_a_name_that_rebinds_to_an_internal_address_after_subscribing_is_not_delivered_to(
    world_a, issued_a, dns, receivers
):
    """GIVEN a subscription whose name resolved to a public address
    WHEN the name later resolves to 127.0.0.1 (where a receiver listens)
    THEN the delivery is refused by the check at delivery time and nothing is sent."""
    receiver = receivers()
    dns.table["rebind.example.org"] = ["127.0.0.1"]
    with override_settings(CER_WEBHOOK_PORTS=[receiver.port]):
        delivery = _deliver(world_a, issued_a.client, f"https://rebind.example.org:{receiver.port}/hook")
    assert receiver.requests == []
    assert delivery.last_error == "destination_refused"


@LOCAL
def test_the_connection_goes_to_the_address_that_was_checked(world_a, issued_a, dns, receivers):
    """The name is resolved once per attempt, by the check; the connection uses that address (a
    second lookup, which rebinding would answer differently, never happens), with the name as Host."""
    receiver = receivers()
    dns.table["pinned.example.org"] = ["127.0.0.1"]
    delivery = _deliver(world_a, issued_a.client, f"http://pinned.example.org:{receiver.port}/hook?a=1")
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert dns.calls == ["pinned.example.org"]
    assert receiver.requests[0]["Host"] == f"pinned.example.org:{receiver.port}"
    assert receiver.requests[0]["path"] == "/hook?a=1"


@LOCAL
def test_redirects_are_not_followed(world_a, issued_a, dns, receivers):
    inside = receivers()
    redirecting = receivers(status=307, location=f"http://127.0.0.1:{inside.port}/internal")
    dns.table["hook.example.org"] = ["127.0.0.1"]
    delivery = _deliver(world_a, issued_a.client, f"http://hook.example.org:{redirecting.port}/hook")
    assert len(redirecting.requests) == 1
    assert inside.requests == []
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert (delivery.last_status_code, delivery.last_error) == (307, "http_error")


@LOCAL
def test_errors_are_reduced_to_categories_that_do_not_map_ports(world_a, issued_a, dns, receivers):
    """A closed port and an unknown name read the same in the log: no port scanning through it."""
    closed = receivers()
    closed.close()
    dns.table["closed.example.org"] = ["127.0.0.1"]
    refused = _deliver(world_a, issued_a.client, f"http://closed.example.org:{closed.port}/hook")
    unknown = _deliver(world_a, issued_a.client, "http://nowhere.example.org/hook")
    assert refused.last_error == "unreachable"
    assert unknown.last_error == "destination_refused"
    errors = set(WebhookAttempt.objects.values_list("error", flat=True))
    assert errors <= {"", "unreachable", "destination_refused", "http_error", "subscription_deleted"}


@override_settings(CER_WEBHOOK_MANAGE_RATE_LIMIT=1)
def test_redelivery_on_demand_is_rate_limited(api_a, world_a, issued_a, dns):
    dns.table["hook.example.org"] = ["93.184.216.34"]
    subscription = webhook_subscription_create(
        facility=world_a.facility, client=issued_a.client, url="https://hook.example.org/h", event_types=[]
    )
    event = OutboxEvent.objects.filter(facility=world_a.facility).first()
    delivery = WebhookDelivery.objects.create(
        subscription=subscription.subscription,
        event=event,
        event_created_at=event.created_at,
        status="failed",
    )
    first = api_a.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver")
    second = api_a.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver")
    assert (first.status_code, second.status_code) == (202, 429)
