"""The enumerations of AFNOR XP Z12-013 Annex A (Flow Service 1.3.0) that edi checks requests against and writes in
its answers, in one place. Reads and writes nothing."""

from __future__ import annotations

FLOW_SYNTAXES = ("CII", "UBL", "Factur-X", "CDAR", "FRR")  # FlowSyntax
FLOW_PROFILES = ("Basic", "CIUS", "Extended-CTC-FR", "Undefined")  # FlowProfile
PROCESSING_RULES = (  # ProcessingRule
    "B2B",
    "B2BInt",
    "B2C",
    "B2G",
    "B2GInt",
    "OutOfScope",
    "B2GOutOfScope",
    "ArchiveOnly",
    "NotApplicable",
    "Undefined",
)
FLOW_TYPES = (  # FlowType
    "CustomerInvoice",
    "SupplierInvoice",
    "CustomerInvoiceLC",
    "SupplierInvoiceLC",
    "StateCustomerInvoiceLC",
    "StateSupplierInvoiceLC",
    "AggregatedCustomerTransactionReport",
    "UnitaryCustomerTransactionReport",
    "AggregatedCustomerPaymentReport",
    "UnitaryCustomerPaymentReport",
    "UnitarySupplierTransactionReport",
    "MultiFlowReport",
    "StateCustomerInvoice",
    "StateSupplierInvoice",
    "StateTransactionReport",
    "StateTransactionReportLC",
    "StatePaymentReport",
    "StatePaymentReportLC",
    "Undefined",
)
FLOW_DIRECTIONS = ("In", "Out")  # FlowDirection
OK, ERROR, PENDING = "Ok", "Error", "Pending"
ACK_STATUSES = (PENDING, OK, ERROR)  # FlowAckStatus
