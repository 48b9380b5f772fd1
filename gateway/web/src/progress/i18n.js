// The board's words in Simplified Chinese and English.

export const KINDS = {
  "hospital.discharge_summary": ["出院小结", "Discharge summary"],
  "hospital.invoice": ["住院费用清单", "Itemised hospital bill"],
  "hospital.diagnosis": ["诊断证明", "Diagnosis certificate"],
  "hospital.lab_report": ["检验报告", "Lab report"],
  "police.accident_determination": ["交通事故认定书", "Accident determination"],
  "police.incident_report": ["警情报告", "Police incident report"],
  "civil.death_certificate": ["死亡证明", "Death certificate"],
  "hospital.admission_summary": ["入院记录", "Admission record"],
  "hospital.procedure": ["手术操作记录", "Procedure record"],
  "payer.adjudication": ["医保结算单", "Payer adjudication"],
  "payer.coverage": ["参保信息", "Insurance coverage"],
  attachment: ["附件", "Attachment"],
};

export const TEXT = {
  zh: {
    title: "理赔进度", lang: "English", larger: "大字", contrast: "高对比度",
    now: "当前进度", steps: "进度记录", typical: "参考用时",
    opened: "理赔已受理",
    requested: (s) => `已向${s.institution || "相关机构"}调取：${s.kinds.map((k) => kind(k, "zh")).join("、")}`,
    received: (s) => `已收到${s.issuer || "机构"}的${kind(s.kind, "zh")}`,
    verified: (s) => `${kind(s.kind, "zh")}已核验（机构签名有效）`,
    anchored: (s) => `${kind(s.kind, "zh")}已存证（不可篡改）`,
    ready: "材料已齐全，进入审核", closed: "理赔已结案",
    status: { open: "等待机构提供", sent: "等待机构提供", fulfilled: "已提供", declined: "机构未能提供",
      cancelled: "已取消", expired: "已超时" },
    due: (t) => `剩余 ${t}`, urgent: "绿色通道",
    typicalText: (t, n) => `同类理赔通常在受理后约 ${t} 材料齐全（近 ${n} 件已结案理赔的中位数）。`,
    typicalNone: "同类已结案理赔还不够多，暂不显示参考用时。",
    noToken: "此页面需要保险公司发给您的完整链接。", loading: "正在读取…",
    refused: { share_revoked: "保险公司已收回此链接，请向保险公司索取新链接。",
      share_expired: "此链接已过期，请向保险公司索取新链接。",
      share_unknown: "此链接无效，请核对保险公司发给您的链接。" },
    offline: "暂时连不上，稍后自动重试。", updated: "有新进度：",
    units: ["天", "小时", "分钟"],
  },
  en: {
    title: "Your claim's progress", lang: "中文", larger: "Larger text", contrast: "High contrast",
    now: "Where your claim is now", steps: "What has happened", typical: "Typical time",
    opened: "Claim opened",
    requested: (s) => `Evidence requested from ${s.institution || "an institution"}: ${s.kinds.map((k) => kind(k, "en")).join(", ")}`,
    received: (s) => `${kind(s.kind, "en")} received from ${s.issuer || "an institution"}`,
    verified: (s) => `${kind(s.kind, "en")} verified (the institution's signature checks)`,
    anchored: (s) => `${kind(s.kind, "en")} sealed in the tamper-proof log`,
    ready: "All evidence is in: ready for assessment", closed: "Claim decided",
    status: { open: "waiting for the institution", sent: "waiting for the institution", fulfilled: "provided",
      declined: "the institution could not provide it", cancelled: "cancelled", expired: "overdue" },
    due: (t) => `${t} left`, urgent: "green channel",
    typicalText: (t, n) => `Claims like yours are usually ready about ${t} after opening (median of the last ${n} closed).`,
    typicalNone: "Not enough closed claims of this kind yet to show a typical time.",
    noToken: "This page needs the full link your insurer sent you.", loading: "Loading…",
    refused: { share_revoked: "Your insurer withdrew this link. Please ask them for a new one.",
      share_expired: "This link has expired. Please ask your insurer for a new one.",
      share_unknown: "This link is not valid. Please check the link your insurer sent." },
    offline: "Cannot reach the service just now; trying again shortly.", updated: "New: ",
    units: ["days", "h", "min"],
  },
};

export function kind(k, lang) {
  const names = KINDS[k];
  if (!names) return k || (lang === "zh" ? "材料" : "A record");
  return names[lang === "zh" ? 0 : 1];
}

/** A duration in words: "2 days 3 h", "45 min". */
export function duration(seconds, lang) {
  const [d, h, m] = TEXT[lang].units;
  const days = Math.floor(seconds / 86400), hours = Math.floor((seconds % 86400) / 3600);
  const mins = Math.max(1, Math.round((seconds % 3600) / 60));
  const sep = lang === "zh" ? " " : " ";
  if (days) return `${days}${sep}${d}${hours ? `${sep}${hours}${sep}${h}` : ""}`;
  if (hours) return `${hours}${sep}${h}${sep}${Math.floor((seconds % 3600) / 60)}${sep}${m}`;
  return `${mins}${sep}${m}`;
}
