"""Drives sf-emulator with the real simple-salesforce client (and its zeep-based
Metadata API client). The emulator's https URL and CA certificate come from
SF_EMULATOR_URL and SF_EMULATOR_CA; the Rust test `conformance` starts one."""

import os
import unittest

import requests
from simple_salesforce import Salesforce
from simple_salesforce.format import format_external_id
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

BASE = os.environ["SF_EMULATOR_URL"]
CA = os.environ["SF_EMULATOR_CA"]
# requests lets REQUESTS_CA_BUNDLE override session.verify, and the Metadata API
# client (zeep) makes its own session: trusting the emulator's CA through the
# environment covers both, as a user of simple-salesforce would do.
os.environ["REQUESTS_CA_BUNDLE"] = CA
VERSION = "67.0"


def token(**extra):
    form = {"grant_type": "password", "client_id": "local-client", "client_secret": "local-secret",
            "username": "admin@example.com", "password": "emulator"}
    form.update(extra)
    r = requests.post(f"{BASE}/services/oauth2/token", data=form, verify=CA, timeout=10)
    return r


def connect():
    r = token()
    r.raise_for_status()
    body = r.json()
    session = requests.Session()
    session.verify = CA
    return Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], version=VERSION, session=session)


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        requests.post(f"{BASE}/_emulator/reset", verify=CA, timeout=10).raise_for_status()
        cls.sf = connect()

    def test_1_oauth_token_response_is_salesforce_shaped(self):
        body = token().json()
        for key in ("access_token", "instance_url", "id", "token_type", "issued_at", "signature"):
            self.assertIn(key, body)
        self.assertEqual(len(body["issued_at"]), 13, "issued_at is milliseconds, as a string")
        self.assertEqual(body["token_type"], "Bearer")
        bad = token(password="wrong")
        self.assertEqual(bad.status_code, 400)
        self.assertEqual(bad.json(), {"error": "invalid_grant", "error_description": "authentication failure"})
        ident = requests.get(body["id"], headers={"Authorization": f"Bearer {body['access_token']}"}, verify=CA, timeout=10).json()
        self.assertEqual(ident["username"], "admin@example.com")
        self.assertTrue(ident["urls"]["metadata"].endswith(ident["organization_id"]))

    def test_2_metadata_object_fields_and_permission_set(self):
        md = self.sf.mdapi
        md.CustomObject.create([md.CustomObject(
            fullName="Ticket__c", label="Ticket", pluralLabel="Tickets",
            nameField=md.CustomField(type="AutoNumber", label="Ticket Number", displayFormat="T-{0000}"),
            deploymentStatus="Deployed", sharingModel="ReadWrite")])
        md.CustomField.create([
            md.CustomField(fullName="Ticket__c.Key__c", label="Key", type="Text", length=255, externalId=True, unique=True),
            md.CustomField(fullName="Ticket__c.Subject__c", label="Subject", type="Text", length=30),
            md.CustomField(fullName="Ticket__c.Body__c", label="Body", type="LongTextArea", length=32768, visibleLines=5),
        ])
        # upsert of an existing field changes it and does not fail
        md.CustomField.upsert([md.CustomField(fullName="Ticket__c.Subject__c", label="Subject", type="Text", length=40)])
        read = md.CustomObject.read("Ticket__c")
        self.assertEqual(read.fullName, "Ticket__c")
        self.assertEqual(read.label, "Ticket")
        field = md.CustomField.read("Ticket__c.Subject__c")
        self.assertEqual(int(field.length), 40)
        with self.assertRaises(Exception) as ctx:
            md.CustomField.create([md.CustomField(fullName="Ticket__c.Key__c", label="Key", type="Text", length=10)])
        self.assertIn("DUPLICATE_DEVELOPER_NAME", str(ctx.exception))

        # Invisible until field-level security is granted.
        names = [f["name"] for f in self.sf.Ticket__c.describe()["fields"]]
        self.assertNotIn("Key__c", names)
        with self.assertRaises(SalesforceMalformedRequest) as ctx:
            self.sf.query("SELECT Key__c FROM Ticket__c")
        self.assertEqual(ctx.exception.content[0]["errorCode"], "INVALID_FIELD")

        md.PermissionSet.create([md.PermissionSet(
            fullName="Ticket_Sync", label="Ticket Sync",
            fieldPermissions=[md.PermissionSetFieldPermissions(field=f"Ticket__c.{f}", readable=True, editable=True)
                              for f in ("Key__c", "Subject__c", "Body__c")],
            objectPermissions=[md.PermissionSetObjectPermissions(object="Ticket__c", allowRead=True, allowCreate=True, allowEdit=True,
                                                                allowDelete=False, modifyAllRecords=False, viewAllRecords=False)])])
        ps = self.sf.query("SELECT Id FROM PermissionSet WHERE Name = 'Ticket_Sync'")["records"][0]["Id"]
        user_id = self.sf.query("SELECT Id FROM User WHERE Username = 'admin@example.com'")["records"][0]["Id"]
        self.sf.PermissionSetAssignment.create({"AssigneeId": user_id, "PermissionSetId": ps})
        fields = {f["name"]: f for f in self.sf.Ticket__c.describe()["fields"]}
        self.assertTrue(fields["Key__c"]["externalId"])
        self.assertEqual(fields["Subject__c"]["length"], 40)
        read_ps = md.PermissionSet.read("Ticket_Sync")
        self.assertEqual(len(read_ps.fieldPermissions), 3)

    def test_3_create_and_upsert_single_201_then_200(self):
        acc = self.sf.Account.create({"Name": "Initech", "Website": "initech.example"})
        self.assertTrue(acc["success"])
        self.assertEqual(len(acc["id"]), 18)
        # An external id with a slash and a non-ASCII letter, percent-encoded as the client documents.
        key = format_external_id("Key__c", "T-1/é")
        self.assertEqual(self.sf.Ticket__c.upsert(key, {"Subject__c": "first"}), 201)
        self.assertEqual(self.sf.Ticket__c.upsert(key, {"Subject__c": "second"}), 200)
        rec = self.sf.Ticket__c.get_by_custom_id("Key__c", "T-1/é")
        self.assertEqual(rec["Subject__c"], "second")
        self.assertRegex(rec["Name"], r"^T-\d{4}$")

    def test_4_collections_upsert(self):
        body = {"allOrNone": False, "records": [
            {"attributes": {"type": "Ticket__c"}, "Key__c": "T-A", "Subject__c": "a"},
            {"attributes": {"type": "Ticket__c"}, "Key__c": "T-B", "Subject__c": "b"},
            {"attributes": {"type": "Ticket__c"}, "Key__c": "T-A", "Subject__c": "dup"},
        ]}
        res = self.sf.restful("composite/sobjects/Ticket__c/Key__c", method="PATCH", json=body)
        self.assertEqual([r["success"] for r in res], [False, True, False])
        self.assertEqual(res[0]["errors"][0]["statusCode"], "DUPLICATE_EXTERNAL_ID")
        self.assertTrue(res[1]["created"])
        body["records"] = body["records"][:2]
        res = self.sf.restful("composite/sobjects/Ticket__c/Key__c", method="PATCH", json=body)
        self.assertEqual([r["created"] for r in res], [True, False])

    def test_5_query_with_paging(self):
        for i in range(0, 2200, 200):
            records = [{"attributes": {"type": "Contact"}, "LastName": f"P{n}", "Email": f"p{n}@page.example"} for n in range(i, i + 200)]
            res = self.sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
            self.assertTrue(all(r["success"] for r in res))
        first = self.sf.query("SELECT Id, Email FROM Contact WHERE Email LIKE '%@page.example' ORDER BY Email")
        self.assertFalse(first["done"])
        self.assertEqual(len(first["records"]), 2000)
        more = self.sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
        self.assertTrue(more["done"])
        self.assertEqual(len(more["records"]), 200)
        everything = self.sf.query_all("SELECT Id FROM Contact WHERE Email LIKE '%@page.example'")
        self.assertEqual(everything["totalSize"], 2200)
        self.assertEqual(len(everything["records"]), 2200)

    def test_6_describe_and_limits(self):
        d = self.sf.describe()
        self.assertIn("Ticket__c", [s["name"] for s in d["sobjects"]])
        limits = self.sf.limits()
        self.assertGreater(limits["DailyApiRequests"]["Max"], 0)
        used, total = self.sf.api_usage["api-usage"].used, self.sf.api_usage["api-usage"].total
        self.assertGreater(used, 0)
        self.assertEqual(total, limits["DailyApiRequests"]["Max"])

    def test_7_error_shapes(self):
        with self.assertRaises(SalesforceMalformedRequest) as ctx:
            self.sf.Contact.create({"LastName": "X", "Nope__c": 1})
        self.assertEqual(ctx.exception.content[0]["errorCode"], "INVALID_FIELD")
        with self.assertRaises(SalesforceMalformedRequest) as ctx:
            self.sf.Ticket__c.create({"Key__c": "T-long", "Subject__c": "x" * 41})
        self.assertEqual(ctx.exception.content[0]["errorCode"], "STRING_TOO_LONG")
        self.assertEqual(ctx.exception.content[0]["fields"], ["Subject__c"])
        with self.assertRaises(SalesforceResourceNotFound):
            self.sf.Contact.get("003000000000000AAA")

    def test_8_expired_session(self):
        requests.post(f"{BASE}/_emulator/expire-tokens", verify=CA, timeout=10).raise_for_status()
        with self.assertRaises(SalesforceExpiredSession) as ctx:
            self.sf.query("SELECT Id FROM Account")
        self.assertEqual(ctx.exception.content[0]["errorCode"], "INVALID_SESSION_ID")
        # A new token (what a refresh gives) works again.
        type(self).sf = connect()
        self.assertGreaterEqual(self.sf.query("SELECT COUNT() FROM Account")["totalSize"], 1)


if __name__ == "__main__":
    unittest.main()
