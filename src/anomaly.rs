//! Anomaly codes of spec §3 (billing files, F01–F14 and L01–L12) and §4
//! (visit attestations, A01–A09), and the anomaly record every report
//! carries. Each code knows its file kind and its level: a file anomaly
//! refuses the whole file; a line (or attestation) anomaly refuses that
//! item only.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Code {
    F01,
    F02,
    F03,
    F04,
    F05,
    F06,
    F07,
    F08,
    F09,
    F10,
    F11,
    F12,
    F13,
    F14,
    L01,
    L02,
    L03,
    L04,
    L05,
    L06,
    L07,
    L08,
    L09,
    L10,
    L11,
    L12,
    A01,
    A02,
    A03,
    A04,
    A05,
    A06,
    A07,
    A08,
    A09,
}

/// What a received file is, read from its root element when it is decided
/// (`factbord`: billing; `attvisites`: visit attestations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Billing,
    Attestations,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Billing => "billing",
            FileKind::Attestations => "attestations",
        }
    }

    pub fn parse(s: &str) -> Option<FileKind> {
        [FileKind::Billing, FileKind::Attestations]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// The kind of a document whose root element is `root`: its local name
    /// `attvisites` (a prefixed one too, so that the attestation reader
    /// says what is wrong with it); anything else, or no readable root, is
    /// read as billing, whose reader names what is wrong.
    pub fn of_root(root: Option<&str>) -> FileKind {
        match root.and_then(|r| r.rsplit(':').next()) {
            Some("attvisites") => FileKind::Attestations,
            _ => FileKind::Billing,
        }
    }

    /// The history's application of the kind (spec §7).
    pub fn application(self) -> &'static str {
        match self {
            FileKind::Billing => "aide-a-domicile",
            FileKind::Attestations => "habitat",
        }
    }

    /// The history's interface of the kind.
    pub fn interface(self) -> &'static str {
        match self {
            FileKind::Billing => "facturation",
            FileKind::Attestations => "attestations",
        }
    }
}

/// A file anomaly rejects the whole file; a line anomaly rejects its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    File,
    Line,
}

impl Code {
    /// Every code, in the specification's order.
    pub const ALL: [Code; 35] = {
        use Code::*;
        [
            F01, F02, F03, F04, F05, F06, F07, F08, F09, F10, F11, F12, F13, F14, L01, L02, L03, L04, L05, L06, L07,
            L08, L09, L10, L11, L12, A01, A02, A03, A04, A05, A06, A07, A08, A09,
        ]
    };

    /// The code of its [`Code::as_str`] form.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            F01 => "F01",
            F02 => "F02",
            F03 => "F03",
            F04 => "F04",
            F05 => "F05",
            F06 => "F06",
            F07 => "F07",
            F08 => "F08",
            F09 => "F09",
            F10 => "F10",
            F11 => "F11",
            F12 => "F12",
            F13 => "F13",
            F14 => "F14",
            L01 => "L01",
            L02 => "L02",
            L03 => "L03",
            L04 => "L04",
            L05 => "L05",
            L06 => "L06",
            L07 => "L07",
            L08 => "L08",
            L09 => "L09",
            L10 => "L10",
            L11 => "L11",
            L12 => "L12",
            A01 => "A01",
            A02 => "A02",
            A03 => "A03",
            A04 => "A04",
            A05 => "A05",
            A06 => "A06",
            A07 => "A07",
            A08 => "A08",
            A09 => "A09",
        }
    }

    /// File anomalies (F.., A01, A09) refuse the whole file; line
    /// anomalies (L..) and attestation anomalies (A02–A08) refuse one item.
    pub fn level(self) -> Level {
        use Code::*;
        match self {
            A01 | A09 => Level::File,
            A02 | A03 | A04 | A05 | A06 | A07 | A08 => Level::Line,
            c if c.as_str().starts_with('F') => Level::File,
            _ => Level::Line,
        }
    }

    /// The kind of file the code is about (F14 is about a billing file).
    pub fn kind(self) -> FileKind {
        if self.as_str().starts_with('A') {
            FileKind::Attestations
        } else {
            FileKind::Billing
        }
    }

    /// Short French title of the rule, for report legends.
    pub fn title_fr(self) -> &'static str {
        use Code::*;
        match self {
            F01 => "Fichier XML mal formé ou illisible",
            F02 => "Fichier non conforme au schéma FactficTrans.xsd",
            F03 => "Extension du fichier différente de .xml",
            F04 => "Nom du fichier non conforme",
            F05 => "Site inconnu ou non validé",
            F06 => "Caisse inconnue ou convention non validée",
            F07 => "Prestation de l'en-tête inconnue",
            F08 => "Totaux de fin de fichier incohérents",
            F09 => "Fichier déjà reçu",
            F10 => "Aucune ligne de facturation",
            F11 => "Fichier trop volumineux",
            F12 => "Site n'appartenant pas au prestataire émetteur",
            F13 => "Champ d'en-tête ou de fin de fichier vide",
            F14 => "Prestataire ne facturant pas par fichier factbord",
            L01 => "Prestation de la ligne différente de l'en-tête",
            L02 => "NIR invalide",
            L03 => "Date d'intervention invalide",
            L04 => "Bénéficiaire sans plan d'aide pour cette prestation",
            L05 => "Période hors des dates du plan d'aide",
            L06 => "Quantité invalide",
            L07 => "Montant supérieur au reste du plan d'aide",
            L08 => "Période déjà facturée",
            L09 => "Tarif unitaire ou montant incorrect",
            L10 => "Régularisation non acceptée",
            L11 => "Site intervenant n'appartenant pas au prestataire",
            L12 => "Champ de la ligne vide",
            A01 => "Fichier d'attestations mal formé ou non conforme",
            A02 => "Commande inconnue pour cette convention",
            A03 => "Attestation déjà transmise pour cette commande",
            A04 => "Date de visite absente, invalide, antérieure à la commande ou future",
            A05 => "Motif de sans suite absent ou invalide",
            A06 => "Commentaire trop long ou contenant le signe €",
            A07 => "NIR différent de celui de la commande",
            A08 => "Dossier clos",
            A09 => "Prestataire n'envoyant pas d'attestations de visite",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub code: Code,
    /// 1-based index of the item (`factprest` line, `attvisite`) for an
    /// item anomaly, else `None`.
    pub line: Option<u32>,
    /// Line of the file where the problem is, when known.
    pub xml_line: Option<u64>,
    /// The element (field) concerned, when there is one.
    pub field: Option<String>,
    /// French message for the provider.
    pub message: String,
}

impl Anomaly {
    pub fn file(code: Code, xml_line: Option<u64>, field: Option<&str>, message: impl Into<String>) -> Anomaly {
        Anomaly {
            code,
            line: None,
            xml_line,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn line(code: Code, line: u32, xml_line: u64, field: &str, message: impl Into<String>) -> Anomaly {
        Anomaly {
            code,
            line: Some(line),
            xml_line: Some(xml_line),
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code.as_str(),
            "line": self.line,
            "xml_line": self.xml_line,
            "field": self.field,
            "message": self.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_knows_its_kind_and_level() {
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert!(!c.title_fr().is_empty());
        }
        assert_eq!((Code::F14.kind(), Code::F14.level()), (FileKind::Billing, Level::File));
        assert_eq!(
            (Code::A01.kind(), Code::A01.level()),
            (FileKind::Attestations, Level::File)
        );
        assert_eq!(
            (Code::A09.kind(), Code::A09.level()),
            (FileKind::Attestations, Level::File)
        );
        for c in [Code::A02, Code::A05, Code::A08] {
            assert_eq!((c.kind(), c.level()), (FileKind::Attestations, Level::Line));
        }
        assert_eq!(Code::L07.level(), Level::Line);
    }
}
