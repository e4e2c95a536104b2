"""The address classification, as pure functions: no address here is ever sent a packet."""

import ipaddress

import pytest

from training.scraping.guard import classify_address, is_allowed_host


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.20", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped: judged by the address it maps to
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("192.0.2.7", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_classified(address, kind):
    assert classify_address(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert classify_address(ipaddress.ip_address(address)) is None


def test_allow_list_matches_names_and_literals_case_insensitively(settings):
    settings.IMAGINEER_SCRAPE_ALLOWED_HOSTS = ["Gallery.Intranet", "127.0.0.1", "[::1]"]
    assert is_allowed_host("gallery.intranet") and is_allowed_host("127.0.0.1") and is_allowed_host("::1")
    assert not is_allowed_host("127.0.0.2") and not is_allowed_host("intranet")
