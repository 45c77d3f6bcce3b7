/*-------------------------------------------------------------------------
 *
 * vsvalidate.c
 *	  amvalidate for vecstore operator classes.
 *
 * A vecstore operator class has one ORDER BY operator (strategy 1,
 * returning float8, ordered by float_ops) and one support function
 * (number 1: the distance function, (type, type) -> float8).  Problems are
 * reported at INFO and make the result false, as core validators do.
 *
 * IDENTIFICATION
 *	  src/vsvalidate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/amvalidate.h"
#include "access/htup_details.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "vsam.h"

/*
 * vsvalidate - check an operator class; see the file header.
 */
bool
vsvalidate(Oid opclassoid)
{
	bool		result = true;
	HeapTuple	classtup;
	Form_pg_opclass classform;
	Oid			opfamilyoid;
	Oid			opcintype;
	char	   *opclassname;
	CatCList   *proclist,
			   *oprlist;
	bool		have_proc = false;
	bool		have_op = false;

	classtup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
	classform = (Form_pg_opclass) GETSTRUCT(classtup);
	opfamilyoid = classform->opcfamily;
	opcintype = classform->opcintype;
	opclassname = NameStr(classform->opcname);

	proclist = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(opfamilyoid));
	for (int i = 0; i < proclist->n_members; i++)
	{
		Form_pg_amproc procform = (Form_pg_amproc) GETSTRUCT(&proclist->members[i]->tuple);

		if (procform->amprocnum != 1)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("vecstore operator class \"%s\" contains function %s with invalid support number %d",
							opclassname, format_procedure(procform->amproc), procform->amprocnum)));
			result = false;
			continue;
		}
		if (!check_amproc_signature(procform->amproc, FLOAT8OID, true, 2, 2, opcintype, opcintype))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("vecstore operator class \"%s\" contains function %s with wrong signature for support number %d",
							opclassname, format_procedure(procform->amproc), procform->amprocnum)));
			result = false;
			continue;
		}
		have_proc = true;
	}

	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(opfamilyoid));
	for (int i = 0; i < oprlist->n_members; i++)
	{
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(&oprlist->members[i]->tuple);

		if (oprform->amopstrategy != 1 || oprform->amoppurpose != AMOP_ORDER ||
			!OidIsValid(oprform->amopsortfamily))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("vecstore operator class \"%s\" contains operator %s that is not an ORDER BY operator with strategy 1",
							opclassname, format_operator(oprform->amopopr))));
			result = false;
			continue;
		}
		if (!check_amop_signature(oprform->amopopr, FLOAT8OID, oprform->amoplefttype,
								  oprform->amoprighttype))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("vecstore operator class \"%s\" contains operator %s with wrong signature",
							opclassname, format_operator(oprform->amopopr))));
			result = false;
			continue;
		}
		have_op = true;
	}

	if (!have_proc)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("vecstore operator class \"%s\" is missing support function 1", opclassname)));
		result = false;
	}
	if (!have_op)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("vecstore operator class \"%s\" has no ORDER BY operator", opclassname)));
		result = false;
	}

	ReleaseCatCacheList(oprlist);
	ReleaseCatCacheList(proclist);
	ReleaseSysCache(classtup);
	return result;
}
