"""WS/T 500 CDA documents: the discharge record and the front page mapped, hand-checked."""

from __future__ import annotations

from typing import Any

import pytest

import adapters
from adapters import cda
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext

from .conftest import ISSUER, assert_no_raw_ids, asset, dumped

RECORD = asset("cda", "discharge_record_c0049.xml")
FRONT = asset("cda", "front_page_c0032.xml")
PEOPLE = ("周建国", "黄志明", "孙丽华", "13912345678", "13800001111")
"""Patient and contact names and phones in the samples: never in a packet."""
ICD10 = {"system": "ICD-10"}
STAFF = [{"role": "chief_physician", "title": "主任医师", "id": "D0102", "name": "王立新"},
         {"role": "attending", "title": "主治医师", "id": "D0311", "name": "刘静"},
         {"role": "resident", "title": "住院医师", "id": "D0458", "name": "陈晓峰"}]
DEPARTMENT = {"service": "骨科", "location": "骨科一病区", "facility": "苏州市第一示例医院"}


def packets(raw: bytes, ctx: AdapterContext) -> list[dict[str, Any]]:
    return [p.to_obj() for p in cda.adapt(raw, ctx)]


def dx(kind: str, code: str, text: str, oid: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, **extra, "code": code, **ICD10, "code_system_oid": oid, "text": text}


def test_the_discharge_record_maps_to_one_discharge_summary(ctx: AdapterContext) -> None:
    [packet] = packets(RECORD, ctx)
    assert packet["kind"] == "hospital.discharge_summary"
    assert packet["issuer"] == ISSUER
    assert packet["subject"] == pseudonymise("cn_resident_id", "320502197602281353")
    assert packet["issued_at"] == "2026-03-21T02:30:15Z"  # 10:30:15 China Standard Time
    assert packet["source"]["format"] == "cda"
    assert packet["body"] == {
        "document": {"type": "出院记录", "standard": "WS/T 500.49-2016",
                     "template_id": "2.16.156.10011.2.1.1.69", "id": "CY20260321000087",
                     "custodian": {"name": "苏州市第一示例医院", "id": "425012345"}},
        "subject_from": "resident_id",
        # the header's effectiveTime is empty: the times come from DE06.00.092.00/017.00
        "encounter": {"admitted_at": "2026-03-14T00:25:00Z",
                      "discharged_at": "2026-03-21T02:00:00Z", "department": DEPARTMENT,
                      "attending_doctor": {"id": "D0311", "name": "刘静"}},
        "diagnoses": [
            # in a section coded 11535-2, but its own display name says 入院诊断
            dx("admission", "S82.201", "胫骨干骨折", "2.16.156.10011.2.3.3.11"),
            # the nested and the standalone code entry are one diagnosis, named by DE05.01.025.00
            dx("discharge", "S82.201", "右胫骨干骨折", "2.16.156.10011.2.3.3.11.3"),
            {"type": "discharge", "tcm": "disease", "code": "BGG000", "system": "GB/T 15657",
             "code_system_oid": "2.16.156.10011.2.3.3.14", "text": "骨折病"}],
        "staff": STAFF,
        "narrative": {
            "admission_condition":
                "患者[removed]因骑电动车与机动车相撞致右小腿疼痛、活动受限2小时入院。",
            "treatment_course": "入院后完善检查,于2026年3月15日在腰硬联合麻醉下行右胫骨骨折切开复位"
            "髓内钉内固定术,术后抗感染、消肿治疗,切口甲级愈合。家属[removed](电话[removed])陪护。",
            "discharge_condition": "切口愈合良好,右下肢感觉运动正常。",
            "discharge_signs": "右小腿轻度肿胀,无压痛。",
            "discharge_orders": "患肢避免负重6周,术后2周拆线,1个月后门诊复查X线片。"},
        "unmapped_sections": [{"code": "46209-3", "name": "Provider Orders"}],
    }


def test_the_front_page_gives_a_discharge_summary_and_an_invoice(ctx: AdapterContext) -> None:
    summary, bill = packets(FRONT, ctx)
    assert (summary["kind"], bill["kind"]) == ("hospital.discharge_summary", "hospital.invoice")
    assert summary["subject"] == bill["subject"] == pseudonymise("cn_resident_id",
                                                                 "440306199203154569")
    body = summary["body"]
    assert body["encounter"] == {
        "admitted_at": "2026-03-14T00:25:00Z", "discharged_at": "2026-03-21T02:00:00Z",
        "admit_source": {"code": "2", "text": "门诊"}, "department": DEPARTMENT,
        "attending_doctor": {"id": "D0311", "name": "刘静"},
        "discharge_disposition": {"code": "1", "text": "医嘱离院"},
        "admission_number": "1", "length_of_stay_days": "7"}
    poa = {"present_on_admission": {"code": "1", "text": "有"}}
    main = "2.16.156.10011.2.3.3.11.3"
    assert body["diagnoses"] == [
        dx("outpatient", "S82.201", "右胫骨骨折", "2.16.156.10011.2.3.3.11"),
        dx("external_cause", "V23.400", "电动自行车驾驶人在交通事故中被小汽车撞伤",
           "2.16.156.10011.2.3.3.11.5"),
        {**dx("discharge", "S82.201", "右胫骨干骨折", main, rank=1), **poa},
        {**dx("discharge", "S82.401", "右腓骨干骨折", main), **poa},
        {**dx("discharge", "I10.X00", "高血压", main), **poa}]
    common = {"system": "ICD-9-CM-3", "code_system_oid": "2.16.156.10011.2.3.3.12",
              "incision_class": {"code": "1", "text": "I类切口"},
              "healing_grade": {"code": "1", "text": "甲"},
              "anaesthesia": {"code": "0302", "text": "腰硬联合麻醉"}}
    assert body["procedures"] == [
        {"code": "79.3601", "text": "胫骨骨折切开复位髓内钉内固定术",
         "time": "2026-03-15T01:30:00Z",
         "level": {"code": "3", "text": "三级手术"}, **common},
        {"code": "86.5901", "text": "皮肤和皮下组织缝合术", "time": "2026-03-15T03:30:00Z",
         "level": {"code": "1", "text": "一级手术"}, **common}]
    assert body["staff"][0] == {"role": "department_head", "title": "科主任", "id": "D0001",
                                "name": "赵国强"}
    assert body["unmapped_sections"] == [{"code": "8716-3", "name": "VITAL SIGNS"}]
    assert "narrative" not in body  # the front page has no free text


def _item(name: str, group: str, code: str | None, amount: str, **extra: Any) -> dict[str, Any]:
    coded = {"code": code, "code_system": "2.16.156.10011.2.2.4"} if code else {}
    return {"description": name, "category": group, **coded, "amount": amount, **extra}


def test_the_front_page_costs_are_an_exact_invoice(ctx: AdapterContext) -> None:
    bill = packets(FRONT, ctx)[1]["body"]
    g, d, t = "综合医疗服务类", "诊断类", "治疗类"
    assert bill["items"] == [
        _item("一般医疗服务费", g, "HDSD00.11.147", "1260.00"),
        _item("一般治疗操作费", g, "HDSD00.11.148", "385.50"),
        _item("护理费", g, "HDSD00.11.145", "420.00"),
        _item("实验室诊断费", d, "HDSD00.11.123", "1156.00"),
        _item("影像学诊断费", d, "HDSD00.11.124", "860.00"),
        _item("临床诊断项目费", d, "HDSD00.11.122", "120.00"),
        _item("非手术治疗项目费", t, "HDSD00.11.129", "640.00", of_which=[
            {"description": "临床物理治疗费", "code": "HDSD00.11.130", "amount": "180.00"}]),
        _item("手术治疗费", t, "HDSD00.11.131", "4850.00", of_which=[
            {"description": "麻醉费", "code": "HDSD00.11.132", "amount": "1200.00"},
            {"description": "手术费", "code": "HDSD00.11.133", "amount": "3650.00"}]),
        _item("康复费", "康复类", "HDSD00.11.055", "300.00"),
        # written 3456.7800 and 892.4000: exact, trailing zeros dropped down to fen
        _item("西药费", "西药类", "HDSD00.11.098", "3456.78", of_which=[
            {"description": "抗菌药物费用", "code": "HDSD00.11.099", "amount": "892.40"}]),
        _item("中成药费", "中药类", "HDSD00.11.135", "210.30"),
        _item("检查用一次性医用材料费", "耗材类", "HDSD00.11.038", "96.00"),
        _item("治疗用一次性医用材料费", "耗材类", "HDSD00.11.040", "435.60"),
        _item("手术用一次性医用材料费", "耗材类", "HDSD00.11.039", "12800.00"),
        _item("其他费", "其他类", None, "48.00")]  # recognised by its name: it has no code
    assert (bill["currency"], bill["total"], bill["declared_total"], bill["self_pay"]) == (
        "CNY", "27038.18", "27038.18", "5234.18")
    assert bill["payment_method"] == {"code": "01", "text": "城镇职工基本医疗保险"}
    assert bill["encounter"] == {"admitted_at": "2026-03-14T00:25:00Z",
                                 "discharged_at": "2026-03-21T02:00:00Z"}
    assert [x["code"] for x in bill["diagnoses"]] == ["S82.201", "S82.401", "I10.X00"]


@pytest.mark.parametrize("raw", [RECORD, FRONT], ids=["record", "front_page"])
def test_no_identifier_name_or_phone_of_the_patient_leaves_the_adapter(
        raw: bytes, ctx: AdapterContext) -> None:
    text = dumped(packets(raw, ctx))
    assert_no_raw_ids(text)
    for secret in PEOPLE:
        assert secret not in text


def test_without_a_resident_id_the_record_number_scoped_to_the_issuer_is_the_subject(
        ctx: AdapterContext) -> None:
    raw = FRONT.replace(b'root="2.16.156.10011.1.3" extension="440306199203154569"',
                        b'root="2.16.156.10011.1.3" nullFlavor="UNK"')
    summary = packets(raw, ctx)[0]
    assert summary["subject"] == pseudonymise(f"mrn:{ISSUER}", "BA-778812")
    assert summary["body"]["subject_from"] == "record_number"
    assert_no_raw_ids(dumped(summary))


def test_a_gbk_declared_document_is_read(ctx: AdapterContext) -> None:
    text = RECORD.decode("utf-8").replace('encoding="UTF-8"', 'encoding="GBK"')
    packet = packets(text.encode("gbk"), ctx)[0]
    assert packet["body"]["diagnoses"][1]["text"] == "右胫骨干骨折"
    assert adapters.detect_format(text.encode("gbk")) == "cda"


def test_the_discharge_summary_c0053_is_mapped_too(ctx: AdapterContext) -> None:
    raw = RECORD.replace(b"2.16.156.10011.2.1.1.69", b"2.16.156.10011.2.1.1.73").replace(
        b'code="C0049"', b'code="C0053"')
    assert packets(raw, ctx)[0]["body"]["document"]["type"] == "出院小结"


def test_times_with_an_offset_and_in_iso_form_are_converted(ctx: AdapterContext) -> None:
    raw = RECORD.replace(b'<effectiveTime value="20260321103015"/>',
                         b'<effectiveTime value="20260321103015+0000"/>').replace(
        b'value="20260314082500"', b'value="2026-03-14 08:25:00"')
    packet = packets(raw, ctx)[0]
    assert packet["issued_at"] == "2026-03-21T10:30:15Z"
    assert packet["body"]["encounter"]["admitted_at"] == "2026-03-14T00:25:00Z"
