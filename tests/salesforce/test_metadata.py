"""The Salesforce DX metadata in salesforce/ and the emulator's schema.toml describe the same data model.

Every test of the project runs against the emulator, while a real org gets the metadata: if the two drift,
the suite stays green and production breaks. So every custom field, custom object and platform event is
compared both ways, attribute by attribute, and the integration permission set is checked against them.
The comparison itself is tested on broken copies of the metadata, so that it can be trusted to fail.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from salesforce_emulator.app import SUPPORTED_VERSIONS
from salesforce_emulator.schema import Field, Schema, SObjectType, load_schema

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "salesforce"
SOURCE = PROJECT / "force-app" / "main" / "default"
PERMISSION_SET = "Salesforce_Integration"
NS = "http://soap.sforce.com/2006/04/metadata"
MD = f"{{{NS}}}"

# schema.toml type -> the metadata field types that describe as that type. A custom Number field describes as
# "double" whatever its scale, so "int" (a type only standard fields have) has no custom counterpart.
METADATA_TYPES: dict[str, set[str]] = {
    "string": {"Text"},
    "textarea": {"TextArea", "LongTextArea"},
    "picklist": {"Picklist"},
    "email": {"Email"},
    "phone": {"Phone"},
    "url": {"Url"},
    "boolean": {"Checkbox"},
    "double": {"Number"},
    "currency": {"Currency"},
    "percent": {"Percent"},
    "date": {"Date"},
    "datetime": {"DateTime"},
    "reference": {"Lookup"},
}
# The field types a platform event may have (Platform Events Developer Guide, "Platform Event Fields").
EVENT_FIELD_TYPES = {"Text", "LongTextArea", "Number", "Checkbox", "Date", "DateTime"}
TEXTAREA_LENGTH = 255  # a TextArea field's length is fixed; LongTextArea states its own

# What docs/salesforce-setup.md grants the integration user: Read, Create and Edit on these objects (never
# Delete), Create on the platform events. PricebookEntry and OrderItem have no object permissions of their
# own: they follow Pricebook2/Product2 and Order, which are granted.
READ_CREATE_EDIT = {"Account", "Contact", "Product2", "Pricebook2", "Contract", "Order", "Shipment__c"}
INHERITED_ACCESS = {"PricebookEntry": "Pricebook2", "OrderItem": "Order"}
USER_PERMISSIONS = {"ApiEnabled", "ApiUserOnly", "ViewSetup"}


def text(element: ET.Element, tag: str) -> str | None:
    """The text of a direct child in the metadata namespace, or None when the element is absent."""
    child = element.find(MD + tag)
    return None if child is None else (child.text or "").strip()


def flag(element: ET.Element, tag: str) -> bool:
    """A boolean element; Salesforce treats an absent one as false."""
    return text(element, tag) == "true"


def parse(path: Path, root_tag: str) -> ET.Element:
    root = ET.parse(path).getroot()  # noqa: S314 -- the repository's own files, not outside input
    assert root.tag == MD + root_tag, f"{path.relative_to(ROOT)}: root is {root.tag}, expected {MD + root_tag}"
    return root


def custom_objects(schema: Schema) -> list[SObjectType]:
    return [obj for obj in schema.objects() if obj.custom]


def custom_fields(obj: SObjectType) -> list[Field]:
    return [f for f in obj.fields.values() if f.name.endswith("__c")]


def field_differences(meta: ET.Element, obj: SObjectType, field: Field, schema: Schema) -> list[str]:
    """Every attribute where one CustomField file says something else than the schema's field."""
    where = f"{obj.name}.{field.name}"
    found: list[str] = []

    def differ(attribute: str, metadata: object, emulator: object) -> None:
        if metadata != emulator:
            found.append(f"{where}: {attribute} is {metadata!r} in the metadata, {emulator!r} in schema.toml")

    mtype = text(meta, "type") or ""
    if mtype not in METADATA_TYPES.get(field.type, set()):
        found.append(f"{where}: metadata type {mtype!r} does not describe as schema type {field.type!r}")
        return found
    differ("fullName", text(meta, "fullName"), field.name)
    differ("label", text(meta, "label"), field.label)
    differ("required", flag(meta, "required"), field.required)
    differ("externalId", flag(meta, "externalId"), field.external_id)
    differ("unique", flag(meta, "unique"), field.unique)
    if not (field.createable and field.updateable):
        found.append(f"{where}: read-only in schema.toml, but a {mtype} field is writable in Salesforce")

    if mtype == "Text":
        differ("length", int(text(meta, "length") or 0), field.length)
        if field.unique:
            # The emulator's uniqueness ignores case, as a field with caseSensitive false does.
            differ("caseSensitive", flag(meta, "caseSensitive"), False)
    elif mtype == "LongTextArea":
        differ("length", int(text(meta, "length") or 0), field.length)
        if not text(meta, "visibleLines"):
            found.append(f"{where}: a LongTextArea needs visibleLines")
    elif mtype == "TextArea":
        differ("length", TEXTAREA_LENGTH, field.length)
    elif mtype in {"Number", "Currency", "Percent"}:
        differ("precision", int(text(meta, "precision") or 0), field.precision)
        differ("scale", int(text(meta, "scale") or 0), field.scale)

    if mtype == "Checkbox":
        differ("defaultValue", text(meta, "defaultValue"), "true" if field.default else "false")
    elif mtype == "Picklist":
        value_set = meta.find(MD + "valueSet")
        definition = None if value_set is None else value_set.find(MD + "valueSetDefinition")
        if value_set is None or definition is None:
            found.append(f"{where}: a Picklist needs valueSet/valueSetDefinition")
            return found
        values = definition.findall(MD + "value")
        differ("picklist values", tuple(text(v, "fullName") for v in values), field.values)
        differ("picklist labels", tuple(text(v, "label") for v in values), field.values)
        defaults = [text(v, "fullName") for v in values if flag(v, "default")]
        differ("picklist default", defaults[0] if defaults else None, field.default)
        differ("restricted", flag(value_set, "restricted"), field.restricted)
    elif field.default is not None:
        literal = f'"{field.default}"' if isinstance(field.default, str) else str(field.default)
        differ("defaultValue", text(meta, "defaultValue"), literal)

    if mtype == "Lookup":
        differ("referenceTo", (text(meta, "referenceTo"),), field.reference_to)
        # In SOQL a custom lookup's parent is reached as <Field>__r; relationshipName names the children.
        differ("parent relationship", field.name[:-3] + "__r", field.relationship_name)
        parent = schema.get(field.reference_to[0]) if field.reference_to else None
        children = {f: rel for child, f, rel in parent.children if child == obj.name} if parent else {}
        differ("child relationship", (text(meta, "relationshipName") or "") + "__r", children.get(field.name))
        if not text(meta, "relationshipLabel"):
            found.append(f"{where}: a Lookup needs relationshipLabel")
        # SetNull is what the emulator does to a child whose parent is deleted; a required lookup cannot.
        differ("deleteConstraint", text(meta, "deleteConstraint"), "SetNull")

    if obj.is_event:
        if mtype not in EVENT_FIELD_TYPES:
            found.append(f"{where}: a platform event cannot have a {mtype} field")
        if field.external_id or field.unique:
            found.append(f"{where}: platform event fields cannot be unique or an external id")
    return found


def object_differences(meta: ET.Element, obj: SObjectType) -> list[str]:
    """What a CustomObject file of a custom object or platform event says unlike the schema."""
    found: list[str] = []
    if text(meta, "label") != obj.label:
        found.append(f"{obj.name}: label {text(meta, 'label')!r} in the metadata, {obj.label!r} in schema.toml")
    if not text(meta, "pluralLabel"):
        found.append(f"{obj.name}: no pluralLabel")
    if text(meta, "deploymentStatus") != "Deployed":
        found.append(f"{obj.name}: deploymentStatus must be Deployed")
    if obj.is_event:
        if text(meta, "eventType") != "HighVolume":
            found.append(f"{obj.name}: eventType must be HighVolume (standard-volume events are retired)")
        if text(meta, "publishBehavior") != "PublishAfterCommit":
            # The emulator publishes at once but rolls an event back with an allOrNone failure, as
            # PublishAfterCommit does; the patterns publish through the REST API either way.
            found.append(f"{obj.name}: publishBehavior must be PublishAfterCommit")
        return found
    if not text(meta, "sharingModel"):
        found.append(f"{obj.name}: no sharingModel")
    name_field = meta.find(MD + "nameField")
    schema_name = obj.field("Name")
    if name_field is None or schema_name is None:
        found.append(f"{obj.name}: the record name must be in both (nameField, Name)")
    elif text(name_field, "type") != "Text" or not text(name_field, "label"):
        found.append(f"{obj.name}: nameField must be Text with a label")
    elif (schema_name.type, schema_name.length) != ("string", 80):
        # A Text record name is always 80 characters in Salesforce.
        found.append(f"{obj.name}: Name is {schema_name.type}({schema_name.length}) in schema.toml, not string(80)")
    return found


def metadata_differences(source: Path, schema: Schema) -> list[str]:
    """Both directions: every custom object and field of the schema has metadata, and every file a schema entry."""
    found: list[str] = []
    objects_dir = source / "objects"
    for directory in sorted(p for p in objects_dir.iterdir() if p.is_dir()):
        obj = schema.get(directory.name)
        if obj is None or obj.name != directory.name:
            found.append(f"objects/{directory.name}: no such object in schema.toml")
            continue
        object_file = directory / f"{obj.name}.object-meta.xml"
        if obj.custom and not object_file.exists():
            found.append(f"{obj.name}: {object_file.name} is missing")
        elif obj.custom:
            found += object_differences(parse(object_file, "CustomObject"), obj)
        for path in sorted((directory / "fields").glob("*.field-meta.xml")):
            name = path.name.removesuffix(".field-meta.xml")
            field = obj.field(name)
            if field is None or field.name != name or not name.endswith("__c"):
                found.append(f"{obj.name}.{name}: no such custom field in schema.toml")
                continue
            found += field_differences(parse(path, "CustomField"), obj, field, schema)

    for obj in custom_objects(schema):
        if not (objects_dir / obj.name / f"{obj.name}.object-meta.xml").exists():
            found.append(f"{obj.name}: no metadata for this custom object or platform event")
    for obj in schema.objects():
        for field in custom_fields(obj):
            if not (objects_dir / obj.name / "fields" / f"{field.name}.field-meta.xml").exists():
                found.append(f"{obj.name}.{field.name}: no metadata for this custom field")

    known = {"objects", "permissionsets"}
    for path in sorted(source.rglob("*-meta.xml")):
        if path.relative_to(source).parts[0] not in known:
            found.append(f"{path.relative_to(source)}: a kind of metadata this check does not compare")
    return found


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema()


def test_metadata_and_schema_agree(schema: Schema):
    assert metadata_differences(SOURCE, schema) == []


def test_every_custom_item_of_the_schema_is_covered(schema: Schema):
    """Guards against a vacuous pass: the comparison must have walked every custom field there is."""
    files = {f"{p.parent.parent.name}.{p.name.removesuffix('.field-meta.xml')}"
             for p in SOURCE.glob("objects/*/fields/*.field-meta.xml")}
    expected = {f"{obj.name}.{f.name}" for obj in schema.objects() for f in custom_fields(obj)}
    assert files == expected
    assert len(expected) >= 18
    assert {"Shipment__c", "Shipment_Status__e", "Contract_Signed__e"} <= {o.name for o in custom_objects(schema)}


def test_every_file_is_metadata_api_xml():
    for path in sorted(SOURCE.rglob("*-meta.xml")):
        root = ET.parse(path).getroot()  # noqa: S314 -- the repository's own files
        assert root.tag.startswith(MD), path
        assert path.read_text(encoding="utf-8").startswith('<?xml version="1.0" encoding="UTF-8"?>'), path
        if root.tag == MD + "CustomField":
            assert text(root, "fullName") == path.name.removesuffix(".field-meta.xml"), path


def test_platform_events_are_defined_as_the_patterns_publish_them(schema: Schema):
    for obj in (o for o in custom_objects(schema) if o.is_event):
        meta = parse(SOURCE / "objects" / obj.name / f"{obj.name}.object-meta.xml", "CustomObject")
        assert text(meta, "eventType") == "HighVolume"
        assert text(meta, "publishBehavior") == "PublishAfterCommit"
        assert meta.find(MD + "sharingModel") is None  # events have no records to share


# -- the comparison fails where it should: each case breaks one copy of the metadata ----------------------

def edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(source: Path) -> None:
        path = source / relative
        content = path.read_text(encoding="utf-8")
        assert old in content, f"{relative} no longer contains {old!r}: update this test case"
        path.write_text(content.replace(old, new, 1), encoding="utf-8")
    return apply


def remove(relative: str) -> Callable[[Path], None]:
    return lambda source: (source / relative).unlink()


def add_field(relative: str, name: str) -> Callable[[Path], None]:
    def apply(source: Path) -> None:
        content = (source / relative).read_text(encoding="utf-8")
        target = (source / relative).with_name(f"{name}.field-meta.xml")
        target.write_text(re.sub(r"<fullName>\w+</fullName>", f"<fullName>{name}</fullName>", content, count=1))
    return apply


ACCOUNT_KEY = "objects/Account/fields/ERP_Customer_Id__c.field-meta.xml"
SHIPMENT = "objects/Shipment__c/"
EVENT = "objects/Shipment_Status__e/"
BREAKAGES = {
    "text length": (edit(ACCOUNT_KEY, "<length>50</length>", "<length>60</length>"),
                    "Account.ERP_Customer_Id__c: length is 60 in the metadata, 50"),
    "external id dropped": (edit(ACCOUNT_KEY, "<externalId>true</externalId>", "<externalId>false</externalId>"),
                            "Account.ERP_Customer_Id__c: externalId is False"),
    "unique dropped": (edit(ACCOUNT_KEY, "<unique>true</unique>", "<unique>false</unique>"),
                       "Account.ERP_Customer_Id__c: unique is False"),
    "case-sensitive uniqueness": (edit(ACCOUNT_KEY, "<caseSensitive>false</caseSensitive>",
                                       "<caseSensitive>true</caseSensitive>"), "caseSensitive is True"),
    "type": (edit(SHIPMENT + "fields/Status_Updated_At__c.field-meta.xml", "<type>DateTime</type>",
                  "<type>Date</type>"), "Shipment__c.Status_Updated_At__c: metadata type 'Date'"),
    "picklist value": (edit(SHIPMENT + "fields/Status__c.field-meta.xml", "<fullName>In Transit</fullName>",
                            "<fullName>Transit</fullName>"), "Shipment__c.Status__c: picklist values"),
    "picklist restricted": (edit("objects/Contract/fields/Billing_Status__c.field-meta.xml",
                                 "<restricted>false</restricted>", "<restricted>true</restricted>"),
                            "Contract.Billing_Status__c: restricted is True"),
    "lookup target": (edit(SHIPMENT + "fields/Order__c.field-meta.xml", "<referenceTo>Order</referenceTo>",
                           "<referenceTo>Contract</referenceTo>"), "Shipment__c.Order__c: referenceTo"),
    "child relationship": (edit(SHIPMENT + "fields/Order__c.field-meta.xml", "<relationshipName>Shipments<",
                                "<relationshipName>Parcels<"), "child relationship is 'Parcels__r'"),
    "required": (edit(EVENT + "fields/Status__c.field-meta.xml", "<required>true</required>",
                      "<required>false</required>"), "Shipment_Status__e.Status__c: required is False"),
    "event field type": (edit(EVENT + "fields/Carrier__c.field-meta.xml", "<type>Text</type>",
                              "<type>Phone</type>"), "Shipment_Status__e.Carrier__c: metadata type 'Phone'"),
    "label": (edit(EVENT + "fields/Location__c.field-meta.xml", "<label>Location</label>", "<label>Place</label>"),
              "Shipment_Status__e.Location__c: label is 'Place'"),
    "event type": (edit(EVENT + "Shipment_Status__e.object-meta.xml", "HighVolume", "StandardVolume"),
                   "Shipment_Status__e: eventType must be HighVolume"),
    "object label": (edit(SHIPMENT + "Shipment__c.object-meta.xml", "<label>Shipment</label>",
                          "<label>Parcel</label>"), "Shipment__c: label 'Parcel'"),
    "field file missing": (remove(EVENT + "fields/Order_Number__c.field-meta.xml"),
                           "Shipment_Status__e.Order_Number__c: no metadata for this custom field"),
    "object file missing": (remove("objects/Contract_Signed__e/Contract_Signed__e.object-meta.xml"),
                            "Contract_Signed__e: Contract_Signed__e.object-meta.xml is missing"),
    "field not in schema": (add_field(ACCOUNT_KEY, "Legacy_Id__c"),
                            "Account.Legacy_Id__c: no such custom field in schema.toml"),
    "wrong-case file name": (add_field(ACCOUNT_KEY, "erp_customer_id__c"),
                             "Account.erp_customer_id__c: no such custom field"),
}


@pytest.mark.parametrize(("breakage", "expected"), BREAKAGES.values(), ids=BREAKAGES.keys())
def test_a_drift_is_reported(tmp_path: Path, schema: Schema, breakage: Callable[[Path], None], expected: str):
    source = tmp_path / "default"
    shutil.copytree(SOURCE, source)
    breakage(source)
    found = metadata_differences(source, schema)
    assert any(expected in line for line in found), found


def test_an_object_the_schema_lacks_is_reported(tmp_path: Path, schema: Schema):
    source = tmp_path / "default"
    shutil.copytree(SOURCE, source)
    shutil.copytree(source / "objects" / "Shipment__c", source / "objects" / "Parcel__c")
    found = metadata_differences(source, schema)
    assert "objects/Parcel__c: no such object in schema.toml" in found


def test_a_schema_extension_without_metadata_is_reported(tmp_path: Path):
    """A field added to the emulator's schema (as a pattern needing one would) fails until its metadata exists."""
    extension = tmp_path / "extra.toml"
    extension.write_text('[objects.Contact.fields]\nLoyalty_Tier__c = { type = "string", length = 20 }\n'
                         '[objects.Return__c]\nkey_prefix = "a02"\n[objects.Return__c.fields]\n'
                         'Name = { type = "string", length = 80 }\n')
    found = metadata_differences(SOURCE, load_schema([extension]))
    assert "Contact.Loyalty_Tier__c: no metadata for this custom field" in found
    assert "Return__c: no metadata for this custom object or platform event" in found


def test_a_schema_change_is_reported(tmp_path: Path):
    extension = tmp_path / "extra.toml"
    extension.write_text('[objects.Order.fields]\n'
                         'Ecommerce_Order_Number__c = { type = "string", length = 80, external_id = true }\n'
                         '[objects.Shipment_Status__e.fields]\n'
                         'Carrier__c = { type = "string", length = 80, unique = true }\n')
    found = metadata_differences(SOURCE, load_schema([extension]))
    assert any("Order.Ecommerce_Order_Number__c: length is 50 in the metadata, 80" in line for line in found)
    assert any("Order.Ecommerce_Order_Number__c: unique is True" in line for line in found)
    assert "Shipment_Status__e.Carrier__c: platform event fields cannot be unique or an external id" in found


# -- the integration user's permission set ----------------------------------------------------------------

@pytest.fixture(scope="module")
def permission_set() -> ET.Element:
    return parse(SOURCE / "permissionsets" / f"{PERMISSION_SET}.permissionset-meta.xml", "PermissionSet")


def object_permissions(permission_set: ET.Element) -> dict[str, dict[str, bool]]:
    result: dict[str, dict[str, bool]] = {}
    for entry in permission_set.findall(MD + "objectPermissions"):
        name = text(entry, "object") or ""
        assert name not in result, f"{name} granted twice"
        result[name] = {child.tag.removeprefix(MD): child.text == "true"
                        for child in entry if child.tag != MD + "object"}
    return result


def test_permission_set_grants_the_objects_and_no_delete(schema: Schema, permission_set: ET.Element):
    granted = object_permissions(permission_set)
    events = {o.name for o in custom_objects(schema) if o.is_event}
    assert set(granted) == READ_CREATE_EDIT | events
    for name, permissions in granted.items():
        assert schema.get(name) is not None, name
        assert permissions["allowRead"], name
        assert permissions["allowCreate"], name
        assert permissions["allowEdit"] is (name not in events), name
        for never in ("allowDelete", "modifyAllRecords", "viewAllRecords"):
            assert permissions[never] is False, (name, never)
    for child, parent in INHERITED_ACCESS.items():
        assert schema.get(child) is not None, child
        assert parent in granted, child


def test_permission_set_grants_edit_on_every_custom_field(schema: Schema, permission_set: ET.Element):
    """Field-level security applies neither to platform event fields nor to required fields (none may be listed)."""
    granted: dict[str, tuple[bool, bool]] = {}
    for entry in permission_set.findall(MD + "fieldPermissions"):
        granted[text(entry, "field") or ""] = (flag(entry, "readable"), flag(entry, "editable"))
    expected = {f"{obj.name}.{f.name}" for obj in schema.objects() if not obj.is_event
                for f in custom_fields(obj) if not f.required}
    assert set(granted) == expected
    assert all(permissions == (True, True) for permissions in granted.values()), granted


def test_permission_set_elements_are_grouped_in_schema_order(permission_set: ET.Element):
    """The Metadata API rejects an element of one kind placed between elements of another."""
    tags = [child.tag.removeprefix(MD) for child in permission_set]
    grouped = [tag for i, tag in enumerate(tags) if i == 0 or tags[i - 1] != tag]
    assert grouped == sorted(set(tags)), grouped
    users = {text(entry, "name") for entry in permission_set.findall(MD + "userPermissions")}
    assert users == USER_PERMISSIONS
    assert text(permission_set, "label")


# -- the DX project and its README ------------------------------------------------------------------------

def test_project_file_points_at_the_source_and_a_supported_version():
    project = json.loads((PROJECT / "sfdx-project.json").read_text(encoding="utf-8"))
    paths = [entry["path"] for entry in project["packageDirectories"]]
    assert [entry.get("default") for entry in project["packageDirectories"]].count(True) == 1
    for path in paths:
        assert (PROJECT / path / "main" / "default").is_dir(), path
    assert project["sourceApiVersion"] in SUPPORTED_VERSIONS


def test_readme_deploys_and_assigns_what_is_there():
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert "sf project deploy start" in readme
    assert f"sf org assign permset --name {PERMISSION_SET}" in readme
    for path in re.findall(r"`(force-app/[^`*<]+)`", readme):
        assert (PROJECT / path).exists(), path
