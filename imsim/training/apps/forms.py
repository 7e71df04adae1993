"""The admin interface's forms, one group per handbook step, with the handbook's field
names and choices. Defaults are the models' own (`imsim.model.config`, `imsim.model.setup`);
names are left for the trainee to type."""

from __future__ import annotations

from imsim.model.config import PORTASIP, STEP_TITLES
from imsim.training.apps.widgets import Form, checkbox, choice, codes, number, text, yes_no

SERVICES = [("Messaging Service", "messaging"), ("Voice Calls", "voice")]
APPLIED_TO = [("Vendor", "vendor"), ("Customer", "customer")]
CONNECTION_TYPES = [("Messaging to Vendor via SIP", "messaging_via_sip"),
                    ("VoIP to Vendor via SIP", "voip_via_sip")]
INTERNAL = [("Route to internally registered SIP accounts (SIP_UA)", "SIP_UA"),
            ("(not an internal connection)", None)]

SHORT_TITLES = {1: "1 Messaging", 2: "2 Policy", 3: "3 Tariff A", 4: "4 Rates A",
                5: "5 Connection", 6: "6 Tariff B", 7: "7 Rates B", 8: "8 Product",
                9: "9 Accounts"}


def enable_messaging() -> Form:
    return Form("enable_messaging", "Enable Messaging (Save, Verify, Check / Apply)")


def service_policy() -> Form:
    return Form("create_service_policy", "Save the service policy", [
        text("name", "Policy Name", placeholder="policy A"),
        text("id", "Policy ID", placeholder="im-sip"),
        text("description", "Description"),
        number("match_priority", "Match Priority", 1),
        text("recipient_domain_pattern", "Recipient domain pattern", "%"),
        choice("transport_protocol", "Transport_protocol", [("SIP", "SIP")], "SIP"),
        yes_no("outgoing_aaa", "Outgoing_aaa", True),
        yes_no("external_routing", "External_routing", False),
        yes_no("local_lookup", "Local_lookup", True),
        yes_no("userpart_e164_translation", "Userpart_e164_translation", True)])


def tariff(applied_to: str, placeholder: str) -> Form:
    return Form("create_tariff", "Save the tariff", [
        text("name", "Name", placeholder=placeholder),
        text("currency", "Currency", "USD"),
        choice("applied_to", "Applied To", APPLIED_TO, applied_to),
        checkbox("routing", "Routing", False),
        choice("service", "Service", SERVICES, "messaging")])


def rate(placeholder: str, example: str) -> Form:
    return Form("add_rate", "Save the rate", [
        text("tariff", "Tariff", placeholder=placeholder),
        text("rate_codes", "Rate Codes", placeholder=example, convert=codes),
        text("price", "Unit Price", "0")])


def connection() -> Form:
    return Form("add_connection", "Save & Close the connection", [
        text("vendor", "Vendor", "internal"),
        text("description", "Description", placeholder="On-net IM to SIP-UA"),
        choice("service_type", "Service Type", SERVICES, "messaging"),
        choice("type", "Type", CONNECTION_TYPES, "messaging_via_sip"),
        text("remote_gateway_id", "Remote Gateway ID", "SIP-UA"),
        choice("internal", "Internal", INTERNAL, "SIP_UA"),
        text("tariff", "Tariff", placeholder="tariff A"),
        text("service_policy", "Service Policy", placeholder="policy A")])


def include_service() -> Form:
    return Form("include_service", "Update the Included Services", [
        text("product", "Product", placeholder="Softphone"),
        choice("service", "Included Services: add", SERVICES, "messaging")])


def usage_charge() -> Form:
    return Form("add_usage_charge", "Update: add the usage charge", [
        text("product", "Product", placeholder="Softphone"),
        choice("service", "Service", SERVICES, "messaging"),
        text("node", "Node", PORTASIP),
        text("tariff", "Tariff", placeholder="tariff B")])


def customer() -> Form:
    return Form("create_customer", "Save the customer", [
        text("name", "Name", placeholder="ACME Corp"),
        text("currency", "Currency", "USD")])


def account() -> Form:
    return Form("create_account", "Save the account", [
        text("customer", "Customer", placeholder="ACME Corp"),
        text("id", "Account ID", placeholder="15551230003"),
        text("password", "Service password"),
        text("product", "Product", placeholder="Softphone")])


def by_step() -> dict[int, list[tuple[str, Form]]]:
    """Per handbook step, its forms with a heading each."""
    return {
        1: [("BillingEngine: ServiceTypes", enable_messaging())],
        2: [("Service Policies: Messaging Service: Add", service_policy())],
        3: [("Tariffs: Add (the internal vendor tariff)", tariff("vendor", "tariff A"))],
        4: [("Tariff A: Rates: Add", rate("tariff A", "|"))],
        5: [("Vendors: internal: Connections: Add", connection())],
        6: [("Tariffs: Add (the customer tariff)", tariff("customer", "tariff B"))],
        7: [("Tariff B: Rates: Add", rate("tariff B", "1, 44"))],
        8: [("Products: Included Services", include_service()),
            ("Products: Usage Charges: Add", usage_charge())],
        9: [("Customers: Add", customer()), ("Accounts: Add", account())],
    }


def title(step: int) -> str:
    return f"Step {step}. {STEP_TITLES[step]}"
